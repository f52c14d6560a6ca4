package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/virtbgp/virtbgp/integration/lab"
)

// Machine describes the machine a run measured on.
type Machine struct {
	CPUs    int    // nproc
	CPU     string // model name from /proc/cpuinfo
	Kernel  string // uname -r
	KVM     bool   // /dev/kvm opens and answers
	Go      string
	Host    string
	Started time.Time
}

// ProbeMachine measures the machine.
func ProbeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Started: time.Now()}
	if out, err := exec.Command("nproc").Output(); err == nil {
		fmt.Sscan(string(out), &m.CPUs)
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = utsString(u.Release[:])
	}
	m.Host, _ = os.Hostname()
	m.KVM = lab.KVMUsable()
	return m
}

func utsString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// String is the machine line of a section.
func (m Machine) String() string {
	virt := "TCG (no usable /dev/kvm)"
	if m.KVM {
		virt = "KVM"
	}
	return fmt.Sprintf("%d CPUs (nproc), %s; kernel %s; %s; %s", m.CPUs, m.CPU, m.Kernel, virt, m.Go)
}

// Load returns the machine's load as uptime(1) shows it: "up ..., load
// average: 0.64, 0.53, 0.72" (from /proc/loadavg and /proc/uptime when
// uptime is missing).
func Load() string {
	if out, err := exec.Command("uptime").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return "load average: " + strings.Join(f[:3], ", ")
	}
	return "load unknown"
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux).
const clockTick = 10 * time.Millisecond

// CPUTime sums the user and system time of the processes (10 ms
// resolution).
func CPUTime(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("cpu of %d: %w", pid, err)
		}
		// Fields after the command name (which may hold spaces): state is
		// field 3, utime 14 and stime 15.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		for _, i := range []int{14 - 3, 15 - 3} {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cpu of %d: %w", pid, err)
			}
			total += time.Duration(v) * clockTick
		}
	}
	return total, nil
}
