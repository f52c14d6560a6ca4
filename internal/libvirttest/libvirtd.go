// Package libvirttest runs a real libvirtd that serves only the test
// driver, on a socket in a test's temporary directory, for tests that need a
// libvirtd they can kill and restart. It is a test helper, not part of the
// daemon.
package libvirttest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"
)

// LibvirtdPath is the daemon binary (Debian package libvirt-daemon).
const LibvirtdPath = "/usr/sbin/libvirtd"

// Daemon is a libvirtd that serves only the test driver on a socket in a
// directory. It is stopped by its PID, never by name.
type Daemon struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{} // closed when the process has been reaped
}

var (
	unshareOnce sync.Once
	unshareOK   bool
)

// canUnshare reports whether libvirtd can be run in a private mount
// namespace. libvirtd, as root, writes /run/libvirt/common/system.token
// whatever its configuration says; bind-mounting a temporary directory over
// /run in its own mount namespace keeps that inside the test's directory.
func canUnshare() bool {
	unshareOnce.Do(func() {
		err := exec.Command("unshare", "--mount", "--propagation", "private",
			"/bin/sh", "-c", "mount -t tmpfs none /run").Run()
		unshareOK = err == nil
	})
	return unshareOK
}

// URI is how clients reach the daemon started in dir.
func URI(dir string) string {
	return "test+unix:///default?socket=" + filepath.Join(dir, "libvirt-sock")
}

// Start starts a test-driver-only libvirtd whose sockets, logs, PID file
// and runtime state all live in dir. It is killed at test cleanup, also on
// failure. It needs root and the libvirt-daemon package (make test installs
// it): without them the test fails, it does not skip.
func Start(t testing.TB, dir string) *Daemon {
	t.Helper()
	d, err := Run(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// Run is Start for a caller that is not a test (a benchmark): the caller
// must Close the daemon.
func Run(dir string) (*Daemon, error) {
	if _, err := os.Stat(LibvirtdPath); err != nil {
		return nil, fmt.Errorf("no libvirtd (install libvirt-daemon; scripts/deps.sh does): %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("running libvirtd needs root")
	}
	drivers := filepath.Join(dir, "drivers") // empty: load no hypervisor driver
	runDir := filepath.Join(dir, "run")
	for _, d := range []string{drivers, runDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("libvirtd dir: %w", err)
		}
	}
	conf := filepath.Join(dir, "libvirtd.conf")
	confText := fmt.Sprintf(`unix_sock_dir = %q
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:%s"
`, dir, filepath.Join(dir, "libvirtd.log"))
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		return nil, fmt.Errorf("libvirtd config: %w", err)
	}
	pidFile := filepath.Join(dir, "libvirtd.pid")
	out, err := os.OpenFile(filepath.Join(dir, "libvirtd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("libvirtd output: %w", err)
	}
	defer out.Close()

	var cmd *exec.Cmd
	if canUnshare() {
		// unshare and sh exec into libvirtd: the child's PID is libvirtd's.
		cmd = exec.Command("unshare", "--mount", "--propagation", "private",
			"/bin/sh", "-c", `mount --bind "$1" /run && exec "$2" -f "$3" -p "$4"`,
			"sh", runDir, LibvirtdPath, conf, pidFile)
	} else {
		// Without a private mount namespace libvirtd creates
		// /run/libvirt/common/system.token.
		cmd = exec.Command(LibvirtdPath, "-f", conf, "-p", pidFile)
	}
	cmd.Env = append(os.Environ(), "LIBVIRT_DRIVER_DIR="+drivers)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start libvirtd: %w", err)
	}
	d := &Daemon{cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// PID is libvirtd's process ID.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Close kills the daemon with SIGKILL by its PID (like a crash) and reaps
// it; closing a daemon that has exited does nothing. A test that kills its
// daemon starts a new one with Start.
func (d *Daemon) Close() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	if err := syscall.Kill(d.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill libvirtd %d: %w", d.cmd.Process.Pid, err)
	}
	select {
	case <-d.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("libvirtd %d not reaped after SIGKILL", d.cmd.Process.Pid)
	}
}

// WaitAnswering polls until the daemon accepts a client connection and
// returns the moment it did; it fails the test if it does not within 10 s.
func (d *Daemon) WaitAnswering(t testing.TB) time.Time {
	t.Helper()
	at, err := d.Ready(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// Ready polls until the daemon accepts a client connection and returns
// the moment it did. It is the one poll of this package, for callers that
// are not tests (the benchmark rig) as well as tests, so it cannot use
// testutil.Eventually; it polls every 2 ms so that the moment it returns
// is close to the one libvirtd began to answer (tests measure reconnect
// times from it).
func (d *Daemon) Ready(timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-d.done:
			log, _ := os.ReadFile(filepath.Join(d.dir, "libvirtd.out"))
			return time.Time{}, fmt.Errorf("libvirtd exited: %s", log)
		default:
		}
		if c, err := lv.NewConnect(URI(d.dir)); err == nil {
			at := time.Now()
			_, _ = c.Close()
			if pid, err := os.ReadFile(filepath.Join(d.dir, "libvirtd.pid")); err == nil &&
				strings.TrimSpace(string(pid)) != strconv.Itoa(d.cmd.Process.Pid) {
				return time.Time{}, fmt.Errorf("libvirtd PID file says %s, started %d", pid, d.cmd.Process.Pid)
			}
			return at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("libvirtd did not answer within %s", timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
