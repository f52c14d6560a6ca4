package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"
)

const libvirtdPath = "/usr/sbin/libvirtd"

// daemon is a libvirtd that serves only the test driver on a socket in a
// temporary directory. It is stopped by its PID, never by name.
type daemon struct {
	t    *testing.T
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

// daemonURI is how clients reach the daemon in dir.
func daemonURI(dir string) string {
	return "test+unix:///default?socket=" + filepath.Join(dir, "libvirt-sock")
}

// startDaemon starts a test-driver-only libvirtd whose sockets, logs, PID
// file and runtime state all live in dir. It is killed at test cleanup, also
// on failure.
func startDaemon(t *testing.T, dir string) *daemon {
	t.Helper()
	if _, err := os.Stat(libvirtdPath); err != nil {
		t.Skipf("no libvirtd: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run libvirtd")
	}
	drivers := filepath.Join(dir, "drivers") // empty: load no hypervisor driver
	runDir := filepath.Join(dir, "run")
	for _, d := range []string{drivers, runDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "libvirtd.conf")
	confText := fmt.Sprintf(`unix_sock_dir = %q
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:%s"
`, dir, filepath.Join(dir, "libvirtd.log"))
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "libvirtd.pid")
	out, err := os.OpenFile(filepath.Join(dir, "libvirtd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	var cmd *exec.Cmd
	if canUnshare() {
		// unshare and sh exec into libvirtd: the child's PID is libvirtd's.
		cmd = exec.Command("unshare", "--mount", "--propagation", "private",
			"/bin/sh", "-c", `mount --bind "$1" /run && exec "$2" -f "$3" -p "$4"`,
			"sh", runDir, libvirtdPath, conf, pidFile)
	} else {
		t.Logf("no private mount namespace; libvirtd will create /run/libvirt/common/system.token")
		cmd = exec.Command(libvirtdPath, "-f", conf, "-p", pidFile)
	}
	cmd.Env = append(os.Environ(), "LIBVIRT_DRIVER_DIR="+drivers)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start libvirtd: %v", err)
	}
	d := &daemon{t: t, cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(d.kill)
	return d
}

// kill stops the daemon with SIGKILL by its PID, like a crash, and reaps it.
func (d *daemon) kill() {
	select {
	case <-d.done:
		return
	default:
	}
	if err := syscall.Kill(d.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		d.t.Errorf("kill libvirtd %d: %v", d.cmd.Process.Pid, err)
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.t.Errorf("libvirtd %d not reaped after SIGKILL", d.cmd.Process.Pid)
	}
}

// waitAnswering polls until the daemon accepts a client connection and
// returns the moment it did.
func (d *daemon) waitAnswering() time.Time {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-d.done:
			log, _ := os.ReadFile(filepath.Join(d.dir, "libvirtd.out"))
			d.t.Fatalf("libvirtd exited: %s", log)
		default:
		}
		if c, err := lv.NewConnect(daemonURI(d.dir)); err == nil {
			at := time.Now()
			_, _ = c.Close()
			if pid, err := os.ReadFile(filepath.Join(d.dir, "libvirtd.pid")); err == nil &&
				strings.TrimSpace(string(pid)) != strconv.Itoa(d.cmd.Process.Pid) {
				d.t.Fatalf("PID file says %s, started %d", pid, d.cmd.Process.Pid)
			}
			return at
		}
		if time.Now().After(deadline) {
			d.t.Fatal("libvirtd did not answer within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestReconnect runs the adapter against a real libvirtd, kills the daemon
// several times and checks that the adapter notices, reports
// ErrNotConnected, reconnects quickly once a new daemon answers, resyncs and
// delivers events again, without piling up goroutines.
func TestReconnect(t *testing.T) {
	dir := t.TempDir()
	uri := daemonURI(dir)
	d := startDaemon(t, dir)
	d.waitAnswering()

	a, _ := startAdapter(t, uri, slog.LevelDebug)
	waitAllHint(t, a, 5*time.Second)
	ctx := context.Background()
	if doms, err := a.Domains(ctx); err != nil || len(doms) != 1 || doms[0].Name != "test" {
		t.Fatalf("Domains on a fresh daemon = %+v, %v; want only \"test\"", doms, err)
	}

	const cycles = 3
	var goroutines []int
	var worst time.Duration
	for i := range cycles {
		d.kill()
		waitFor(t, "adapter to notice the dead daemon", 5*time.Second, func() bool { return !a.Connected() })
		if _, err := a.Domains(ctx); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("cycle %d: Domains while disconnected: %v, want ErrNotConnected", i, err)
		}
		if _, _, err := a.Domain(ctx, "6f1b0b52-3c1e-4a4e-9d36-5d2c0ad1e000"); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("cycle %d: Domain while disconnected: %v, want ErrNotConnected", i, err)
		}
		drainHints(a)

		// Stay down for a while so that the backoff grows to its cap:
		// the worst case for the reconnect time.
		time.Sleep(time.Duration(i) * 700 * time.Millisecond)

		d = startDaemon(t, dir)
		answering := d.waitAnswering()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.WaitConnected(wctx)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: adapter did not reconnect: %v", i, err)
		}
		took := time.Since(answering)
		worst = max(worst, took)
		t.Logf("cycle %d: reconnected %v after libvirtd answered (down %v before restart)", i, took.Round(time.Millisecond), time.Duration(i)*700*time.Millisecond)

		if h := waitAllHint(t, a, 5*time.Second); h.Event != "Connected" {
			t.Errorf("cycle %d: resync hint %+v", i, h)
		}

		// Events flow again.
		c := openConn(t, uri)
		dom, err := c.DomainCreateXML(domainXML(fmt.Sprintf("%s-%d", uniqueName(t), i)), 0)
		if err != nil {
			t.Fatalf("cycle %d: create: %v", i, err)
		}
		uuid := domUUID(t, dom)
		_ = dom.Free()
		waitHint(t, a, uuid, "Started Booted")
		if doms, err := a.Domains(ctx); err != nil || len(doms) != 2 {
			t.Fatalf("cycle %d: Domains = %+v, %v; want test and the new domain", i, doms, err)
		}

		time.Sleep(50 * time.Millisecond) // let goroutines of the old session end
		goroutines = append(goroutines, runtime.NumGoroutine())
	}
	t.Logf("worst reconnect after libvirtd answered: %v; goroutines after each reconnect: %v", worst.Round(time.Millisecond), goroutines)
	// The backoff is capped at 1 s, so this is about 1 s at worst; 2 s is
	// what an operator expects.
	if worst > 2*time.Second {
		t.Errorf("reconnect took %v after libvirtd answered, want under 2s", worst)
	}
	if goroutines[cycles-1] > goroutines[0]+2 {
		t.Errorf("goroutines pile up over reconnects: %v", goroutines)
	}
}

// TestDeadConnectionDetectedByCall checks the second way a dead connection
// is noticed: a call fails and the connection is no longer alive. The
// session is installed by hand, without a close callback, so that only
// the failing call can tell.
func TestDeadConnectionDetectedByCall(t *testing.T) {
	dir := t.TempDir()
	uri := daemonURI(dir)
	d := startDaemon(t, dir)
	d.waitAnswering()

	log, sink := newTestLogger(t, slog.LevelDebug)
	a := New(uri, log)
	conn, err := lv.NewConnect(uri)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{conn: conn, lifecycleID: -1, dead: make(chan struct{})}
	a.install(s)
	ctx := context.Background()
	if _, err := a.Domains(ctx); err != nil {
		t.Fatalf("Domains on a live connection: %v", err)
	}

	d.kill()
	_, err = a.Domains(ctx)
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Domains on a dead connection: %v, want an error matching ErrNotConnected", err)
	}
	var lverr lv.Error
	if !errors.As(err, &lverr) {
		t.Errorf("error %v does not wrap the libvirt error", err)
	}
	t.Logf("error: %v", err)
	select {
	case <-s.dead:
		t.Logf("session marked dead: %s", s.reason)
	default:
		t.Fatal("failed call on a dead connection did not mark the session dead")
	}
	a.uninstall()
	s.teardown(a.log)
	if w := sink.warnings("leak"); len(w) > 0 {
		t.Errorf("connection leak logged: %q", w)
	}
}
