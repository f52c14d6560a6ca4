package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one long-running process the lab started. It is identified by
// its PID and its start time, so that a recycled PID is never signalled, and
// it survives the process that started it: a lab brought up by one process
// (make lab) is taken down by another (make lab-down) from the state file.
type process struct {
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // field 22 of /proc/PID/stat: clock ticks after boot
	Log   string `json:"log,omitempty"`

	// done is closed once this process, a child of ours, has been reaped;
	// nil for a process loaded from the state file.
	done chan struct{}
}

// startProcess starts argv in a new session (so that a terminal's Ctrl-C or
// the exit of the starting process does not reach it) with stdin from
// /dev/null and stdout and stderr appended to logPath. env, if not nil, is
// added to the environment.
func startProcess(name, logPath string, env []string, argv ...string) (*process, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", name, err)
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	p := &process{Name: name, PID: cmd.Process.Pid, Log: logPath, done: make(chan struct{})}
	// The start time is read before the child can be reaped: only this
	// goroutine's Wait below reaps it.
	if _, start, err := procStat(p.PID); err == nil {
		p.Start = start
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// procStat returns the state letter and the start time of a process.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22 overall
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return f[0][0], start, nil
}

// alive reports whether the process still runs. A zombie is dead: a process
// loaded from the state file is no longer our child, and its zombie waits
// for PID 1 to reap it.
func (p *process) alive() bool {
	if p == nil || p.PID <= 0 {
		return false
	}
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
		}
	}
	state, start, err := procStat(p.PID)
	if err != nil || state == 'Z' || state == 'X' {
		return false
	}
	return p.Start == 0 || start == p.Start
}

// errGone is returned when signalling a process that no longer runs.
var errGone = errors.New("process is not running")

// signal sends sig to the process, if it still runs.
func (p *process) signal(sig syscall.Signal) error {
	if !p.alive() {
		return fmt.Errorf("signal %s %v: %w", p.Name, sig, errGone)
	}
	if err := syscall.Kill(p.PID, sig); err != nil {
		return fmt.Errorf("signal %s (pid %d) %v: %w", p.Name, p.PID, sig, err)
	}
	return nil
}

// wait waits until the process has ended or ctx is done.
func (p *process) wait(ctx context.Context) error {
	if p.done != nil {
		select {
		case <-p.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("wait for %s (pid %d) to exit: %w", p.Name, p.PID, ctx.Err())
		}
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for p.alive() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s (pid %d) to exit: %w", p.Name, p.PID, ctx.Err())
		}
	}
	return nil
}

// stop sends sig (SIGTERM when 0), waits up to grace, then sends SIGKILL
// and waits for the process to be gone. A process that is not running is
// already stopped.
func (p *process) stop(ctx context.Context, sig syscall.Signal, grace time.Duration) error {
	if !p.alive() {
		return nil
	}
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if err := p.signal(sig); err != nil {
		if errors.Is(err, errGone) {
			return nil
		}
		return err
	}
	gctx, cancel := context.WithTimeout(ctx, grace)
	err := p.wait(gctx)
	cancel()
	if err == nil {
		return nil
	}
	if err := p.signal(syscall.SIGKILL); err != nil && !errors.Is(err, errGone) {
		return err
	}
	kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return p.wait(kctx)
}
