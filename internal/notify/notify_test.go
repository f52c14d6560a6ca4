package notify_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/virtbgp/virtbgp/internal/notify"
)

// datagram is one message received on the test's NOTIFY_SOCKET.
type datagram struct {
	msg string
	pid int32 // sender, from SCM_CREDENTIALS (what NotifyAccess=main checks)
	at  time.Time
}

// notifySocket is a service manager's end of the protocol: a unixgram
// socket receiving with SO_PASSCRED, as systemd does.
type notifySocket struct {
	conn *net.UnixConn
	msgs chan datagram
	done chan struct{}
}

// listenNotify opens the socket at addr (a path, or "@name" for the
// abstract namespace) and points NOTIFY_SOCKET at it for this test.
func listenNotify(t *testing.T, addr string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		t.Fatalf("SO_PASSCRED: %v %v", err, serr)
	}
	s := &notifySocket{conn: conn, msgs: make(chan datagram, 1000), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
		for {
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			d := datagram{msg: string(buf[:n]), pid: -1, at: time.Now()}
			if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range cmsgs {
					if cred, err := unix.ParseUnixCredentials(&m); err == nil {
						d.pid = cred.Pid
					}
				}
			}
			s.msgs <- d
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	t.Setenv("NOTIFY_SOCKET", addr)
	return s
}

// next returns the next datagram, failing the test after timeout.
func (s *notifySocket) next(t *testing.T, timeout time.Duration) datagram {
	t.Helper()
	select {
	case d := <-s.msgs:
		return d
	case <-time.After(timeout):
		t.Fatalf("no datagram within %v", timeout)
		return datagram{}
	}
}

// none fails the test if a datagram arrives within d.
func (s *notifySocket) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.msgs:
		t.Fatalf("unexpected datagram %q", m.msg)
	case <-time.After(d):
	}
}

// drain discards what is queued.
func (s *notifySocket) drain() {
	for {
		select {
		case <-s.msgs:
		default:
			return
		}
	}
}

// syncBuffer is a log destination safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func monotonicUsec(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// shortDir is a temporary directory with a path short enough for a unix
// socket (108 bytes) whatever the test's name.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ntfy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestProtocol(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sd_notify is Linux only")
	}
	for _, tc := range []struct{ name, addr string }{
		{"path", filepath.Join(shortDir(t), "notify.sock")},
		{"abstract", fmt.Sprintf("@virtbgp-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := listenNotify(t, tc.addr)
			log, logs := newLogger()
			n := notify.New(log)
			if !n.Enabled() {
				t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
			}
			expect := func(want string) {
				t.Helper()
				d := s.next(t, 2*time.Second)
				if d.msg != want {
					t.Fatalf("datagram %q, want %q", d.msg, want)
				}
				if d.pid != int32(os.Getpid()) {
					t.Fatalf("sender pid %d, want this process %d (NotifyAccess=main)", d.pid, os.Getpid())
				}
			}

			n.Ready("")
			expect("READY=1")
			n.Ready("synced: 3 routes, 2 peers")
			expect("READY=1\nSTATUS=synced: 3 routes, 2 peers")
			n.Status("2 peers up")
			expect("STATUS=2 peers up")
			n.Status("line one\nREADY=1\r\tend")
			expect("STATUS=line one READY=1  end")
			n.Status("")
			expect("STATUS=")

			before := monotonicUsec(t)
			n.Reloading()
			after := monotonicUsec(t)
			d := s.next(t, 2*time.Second)
			m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=([0-9]+)$`).FindStringSubmatch(d.msg)
			if m == nil {
				t.Fatalf("datagram %q, want RELOADING=1 and MONOTONIC_USEC in one datagram", d.msg)
			}
			usec, _ := strconv.ParseInt(m[1], 10, 64)
			if usec < before || usec > after {
				t.Fatalf("MONOTONIC_USEC=%d not within [%d, %d] (CLOCK_MONOTONIC in µs)", usec, before, after)
			}
			n.Ready("reloaded")
			expect("READY=1\nSTATUS=reloaded")

			n.Stopping()
			expect("STOPPING=1")

			s.none(t, 100*time.Millisecond)
			if l := logs.String(); l != "" {
				t.Fatalf("unexpected log output:\n%s", l)
			}
		})
	}
}

func TestNoSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))

	log, logs := newLogger()
	for _, n := range []*notify.Notifier{notify.New(log), nil, notify.New(nil)} {
		if n.Enabled() {
			t.Fatal("Enabled() = true without NOTIFY_SOCKET")
		}
		n.Ready("x")
		n.Status("x")
		n.Reloading()
		n.Stopping()
		called := atomic.Bool{}
		returned := make(chan struct{})
		go func() {
			n.Watchdog(context.Background(), func(context.Context) bool { called.Store(true); return true })
			close(returned)
		}()
		select {
		case <-returned:
		case <-time.After(2 * time.Second):
			t.Fatal("Watchdog did not return without NOTIFY_SOCKET")
		}
		if called.Load() {
			t.Fatal("health check called without NOTIFY_SOCKET")
		}
	}
	if l := logs.String(); l != "" {
		t.Fatalf("unexpected log output:\n%s", l)
	}
}

func TestSendFailureIsLogged(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(shortDir(t), "nobody-listens.sock"))
	log, logs := newLogger()
	n := notify.New(log)
	n.Ready("x") // must not panic or exit
	n.Reloading()
	n.Stopping()
	l := logs.String()
	if got := strings.Count(l, "systemd notify failed"); got != 3 {
		t.Fatalf("%d failures logged, want 3:\n%s", got, l)
	}
	if !strings.Contains(l, "READY=1 STATUS=x") || !strings.Contains(l, "no such file") {
		t.Fatalf("log lacks the message or the error:\n%s", l)
	}
}

// runWatchdog starts Watchdog and returns its cancel and a channel closed
// when it returns.
func runWatchdog(n *notify.Notifier, healthy func(context.Context) bool) (context.CancelFunc, <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Watchdog(ctx, healthy)
	}()
	return cancel, done
}

func waitDone(t *testing.T, done <-chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("Watchdog did not return within %v %s", within, what)
	}
}

func TestWatchdog(t *testing.T) {
	s := listenNotify(t, filepath.Join(shortDir(t), "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "200000") // pings every 100 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	log, logs := newLogger()

	var healthy atomic.Bool
	var checks atomic.Int64
	healthy.Store(true)
	cancel, done := runWatchdog(notify.New(log), func(ctx context.Context) bool {
		checks.Add(1)
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > 100*time.Millisecond {
			t.Errorf("health check context: deadline %v (set: %v), want at most the ping period", time.Until(dl), ok)
		}
		return healthy.Load()
	})
	defer cancel()

	// Healthy: a ping at once, then one every 100 ms.
	var pings []datagram
	end := time.Now().Add(650 * time.Millisecond)
	for time.Now().Before(end) {
		select {
		case d := <-s.msgs:
			if d.msg != "WATCHDOG=1" {
				t.Fatalf("datagram %q, want WATCHDOG=1", d.msg)
			}
			pings = append(pings, d)
		case <-time.After(time.Until(end)):
		}
	}
	if len(pings) < 4 || len(pings) > 9 {
		t.Fatalf("%d pings in 650 ms, want about 7 (every 100 ms)", len(pings))
	}
	mean := pings[len(pings)-1].at.Sub(pings[0].at) / time.Duration(len(pings)-1)
	if mean < 80*time.Millisecond || mean > 170*time.Millisecond {
		t.Fatalf("pings every %v on average, want about 100 ms", mean)
	}
	for i := 1; i < len(pings); i++ {
		if gap := pings[i].at.Sub(pings[i-1].at); gap < 40*time.Millisecond {
			t.Fatalf("two pings %v apart, want about 100 ms", gap)
		}
	}

	// Unhealthy: pings stop (one may be in flight), checks go on.
	healthy.Store(false)
	time.Sleep(150 * time.Millisecond)
	s.drain()
	c0 := checks.Load()
	s.none(t, 500*time.Millisecond)
	if c := checks.Load() - c0; c < 3 {
		t.Fatalf("%d health checks in 500 ms while unhealthy, want about 5", c)
	}

	// Healthy again: pings resume.
	healthy.Store(true)
	for i := 0; i < 3; i++ {
		if d := s.next(t, 400*time.Millisecond); d.msg != "WATCHDOG=1" {
			t.Fatalf("datagram %q, want WATCHDOG=1", d.msg)
		}
	}

	// ctx ends: Watchdog returns, pings stop.
	cancel()
	waitDone(t, done, time.Second, "after ctx ended")
	s.drain()
	s.none(t, 300*time.Millisecond)

	l := logs.String()
	if strings.Count(l, "health check failed") != 1 || strings.Count(l, "pings resume") != 1 {
		t.Fatalf("want one warning when the check fails and one note when it passes again, got:\n%s", l)
	}
}

func TestWatchdogOtherPID(t *testing.T) {
	s := listenNotify(t, filepath.Join(shortDir(t), "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getppid())) // the watchdog is someone else's
	var called atomic.Bool
	cancel, done := runWatchdog(notify.New(nil), func(context.Context) bool { called.Store(true); return true })
	defer cancel()
	waitDone(t, done, time.Second, "for another process's watchdog")
	s.none(t, 300*time.Millisecond)
	if called.Load() {
		t.Fatal("health check called for another process's watchdog")
	}
}

func TestWatchdogUnset(t *testing.T) {
	s := listenNotify(t, filepath.Join(shortDir(t), "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "")
	os.Unsetenv("WATCHDOG_USEC")
	cancel, done := runWatchdog(notify.New(nil), func(context.Context) bool { return true })
	defer cancel()
	waitDone(t, done, time.Second, "without WATCHDOG_USEC")
	s.none(t, 300*time.Millisecond)
}

func TestWatchdogBadEnvironment(t *testing.T) {
	listenNotify(t, filepath.Join(shortDir(t), "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "soon")
	log, logs := newLogger()
	cancel, done := runWatchdog(notify.New(log), func(context.Context) bool { return true })
	defer cancel()
	waitDone(t, done, time.Second, "with a bad WATCHDOG_USEC")
	if !strings.Contains(logs.String(), "not pinging") {
		t.Fatalf("bad WATCHDOG_USEC not logged:\n%s", logs.String())
	}
}

// A wedged main loop: the check does not answer in time. Whether it
// honours its context or ignores it, no ping is sent and Watchdog still
// returns when ctx ends.
func TestWatchdogWedgedCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(release <-chan struct{}) func(context.Context) bool
	}{
		{"honours ctx, answers late", func(<-chan struct{}) func(context.Context) bool {
			return func(ctx context.Context) bool { <-ctx.Done(); return true }
		}},
		{"ignores ctx", func(release <-chan struct{}) func(context.Context) bool {
			return func(context.Context) bool { <-release; return true }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := listenNotify(t, filepath.Join(shortDir(t), "notify.sock"))
			t.Setenv("WATCHDOG_USEC", "200000")
			t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
			release := make(chan struct{})
			defer close(release)
			cancel, done := runWatchdog(notify.New(nil), tc.check(release))
			s.none(t, 500*time.Millisecond)
			cancel()
			waitDone(t, done, time.Second, "with a wedged check")
		})
	}
}

func TestWatchdogNilCheck(t *testing.T) {
	s := listenNotify(t, filepath.Join(shortDir(t), "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	cancel, done := runWatchdog(notify.New(nil), nil)
	for i := 0; i < 2; i++ {
		if d := s.next(t, 400*time.Millisecond); d.msg != "WATCHDOG=1" {
			t.Fatalf("datagram %q, want WATCHDOG=1", d.msg)
		}
	}
	cancel()
	waitDone(t, done, time.Second, "after ctx ended")
}
