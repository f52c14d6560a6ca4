package notify_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/virtbgp/virtbgp/internal/notify"
	"github.com/virtbgp/virtbgp/internal/testutil"
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
			log, logs := testutil.Logger()
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

			// Nothing else was sent: the next datagram is one sent after.
			n.Status("end")
			expect("STATUS=end")
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

	log, logs := testutil.Logger()
	for _, n := range []*notify.Notifier{notify.New(log), nil, notify.New(nil)} {
		if n.Enabled() {
			t.Fatal("Enabled() = true without NOTIFY_SOCKET")
		}
		n.Ready("x")
		n.Status("x")
		n.Reloading()
		n.Stopping()
		synctest.Test(t, func(t *testing.T) {
			var called atomic.Bool
			w := runWatchdog(n, func(context.Context) bool { called.Store(true); return true })
			defer w.stop()
			if !w.returned() {
				t.Fatal("Watchdog did not return without NOTIFY_SOCKET")
			}
			if called.Load() {
				t.Fatal("health check called without NOTIFY_SOCKET")
			}
		})
	}
	if l := logs.String(); l != "" {
		t.Fatalf("unexpected log output:\n%s", l)
	}
}

func TestSendFailureIsLogged(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(shortDir(t), "nobody-listens.sock"))
	log, logs := testutil.Logger()
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

// The watchdog's pings reach the real socket, from this process.
func TestWatchdogSocket(t *testing.T) {
	s := listenNotify(t, filepath.Join(shortDir(t), "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	w := runWatchdog(notify.New(nil), nil)
	defer w.stop()
	for range 2 {
		d := s.next(t, 5*time.Second)
		if d.msg != "WATCHDOG=1" || d.pid != int32(os.Getpid()) {
			t.Fatalf("datagram %q from pid %d, want WATCHDOG=1 from this process", d.msg, d.pid)
		}
	}
}

// The watchdog's timer logic runs on testing/synctest's fake clock, its
// datagrams handed to a sink that notes when each was sent.

// sink collects the datagrams of a Notifier made with NewWithSink.
type sink struct {
	mu   sync.Mutex
	msgs []datagram
}

func (s *sink) send(msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, datagram{msg: msg, at: time.Now()})
	return nil
}

// take returns the datagrams sent since the last take.
func (s *sink) take() []datagram {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.msgs
	s.msgs = nil
	return out
}

// wantPings fails unless got is exactly one WATCHDOG=1 at each of the
// times at (offsets from t0).
func wantPings(t *testing.T, got []datagram, t0 time.Time, at ...time.Duration) {
	t.Helper()
	var times []time.Duration
	for _, d := range got {
		if d.msg != "WATCHDOG=1" {
			t.Fatalf("datagram %q, want WATCHDOG=1", d.msg)
		}
		times = append(times, d.at.Sub(t0))
	}
	if !slices.Equal(times, at) {
		t.Fatalf("pings at %v, want at %v", times, at)
	}
}

// fakeWatchdogEnv makes this process's watchdog one of timeout 200ms (a
// check and a ping every 100ms). NOTIFY_SOCKET is set but not used: the
// Notifiers of these tests send to a sink.
func fakeWatchdogEnv(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "@virtbgp-test-unused")
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
}

// watchdog is a Watchdog running in its own goroutine.
type watchdog struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func runWatchdog(n *notify.Notifier, healthy func(context.Context) bool) *watchdog {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchdog{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		n.Watchdog(ctx, healthy)
	}()
	return w
}

// returned tells, once every goroutine of the bubble is blocked, whether
// Watchdog has returned.
func (w *watchdog) returned() bool {
	synctest.Wait()
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// stop ends Watchdog's context and waits for it to return.
func (w *watchdog) stop() {
	w.cancel()
	<-w.done
}

func TestWatchdog(t *testing.T) {
	fakeWatchdogEnv(t)
	synctest.Test(t, func(t *testing.T) {
		log, logs := testutil.Logger()
		var out sink
		var healthy atomic.Bool
		var checks atomic.Int64
		healthy.Store(true)
		t0 := time.Now()
		w := runWatchdog(notify.NewWithSink(log, out.send), func(ctx context.Context) bool {
			checks.Add(1)
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) != 100*time.Millisecond {
				t.Errorf("health check context: deadline in %v (set: %v), want the ping period, 100ms", time.Until(dl), ok)
			}
			return healthy.Load()
		})

		// Healthy: a ping at once, then one every 100 ms.
		time.Sleep(650 * time.Millisecond)
		synctest.Wait()
		ms := time.Millisecond
		wantPings(t, out.take(), t0, 0, 100*ms, 200*ms, 300*ms, 400*ms, 500*ms, 600*ms)

		// Unhealthy: pings stop, checks go on.
		healthy.Store(false)
		c0 := checks.Load()
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		wantPings(t, out.take(), t0)
		if c := checks.Load() - c0; c != 5 {
			t.Fatalf("%d health checks in 500 ms while unhealthy, want 5", c)
		}

		// Healthy again: pings resume at the next check.
		healthy.Store(true)
		time.Sleep(300 * time.Millisecond)
		synctest.Wait()
		wantPings(t, out.take(), t0, 1200*ms, 1300*ms, 1400*ms)

		// ctx ends: Watchdog returns, pings stop.
		w.cancel()
		if !w.returned() {
			t.Fatal("Watchdog did not return after ctx ended")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		wantPings(t, out.take(), t0)

		l := logs.String()
		if strings.Count(l, "health check failed") != 1 || strings.Count(l, "pings resume") != 1 {
			t.Fatalf("want one warning when the check fails and one note when it passes again, got:\n%s", l)
		}
	})
}

func TestWatchdogOtherPID(t *testing.T) {
	fakeWatchdogEnv(t)
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getppid())) // the watchdog is someone else's
	synctest.Test(t, func(t *testing.T) {
		var out sink
		var called atomic.Bool
		w := runWatchdog(notify.NewWithSink(nil, out.send), func(context.Context) bool { called.Store(true); return true })
		defer w.stop()
		if !w.returned() {
			t.Fatal("Watchdog did not return for another process's watchdog")
		}
		if got := out.take(); len(got) != 0 || called.Load() {
			t.Fatalf("sent %v, health check called: %v; want nothing", got, called.Load())
		}
	})
}

func TestWatchdogUnset(t *testing.T) {
	fakeWatchdogEnv(t)
	t.Setenv("WATCHDOG_USEC", "")
	os.Unsetenv("WATCHDOG_USEC")
	synctest.Test(t, func(t *testing.T) {
		var out sink
		w := runWatchdog(notify.NewWithSink(nil, out.send), func(context.Context) bool { return true })
		defer w.stop()
		if !w.returned() {
			t.Fatal("Watchdog did not return without WATCHDOG_USEC")
		}
		if got := out.take(); len(got) != 0 {
			t.Fatalf("sent %v without WATCHDOG_USEC", got)
		}
	})
}

func TestWatchdogBadEnvironment(t *testing.T) {
	fakeWatchdogEnv(t)
	t.Setenv("WATCHDOG_USEC", "soon")
	synctest.Test(t, func(t *testing.T) {
		log, logs := testutil.Logger()
		var out sink
		w := runWatchdog(notify.NewWithSink(log, out.send), func(context.Context) bool { return true })
		defer w.stop()
		if !w.returned() {
			t.Fatal("Watchdog did not return with a bad WATCHDOG_USEC")
		}
		if !strings.Contains(logs.String(), "not pinging") {
			t.Fatalf("bad WATCHDOG_USEC not logged:\n%s", logs.String())
		}
		if got := out.take(); len(got) != 0 {
			t.Fatalf("sent %v with a bad WATCHDOG_USEC", got)
		}
	})
}

// A wedged main loop: the check does not answer in time. Whether it
// honours its context or ignores it, no ping is sent and Watchdog still
// returns when ctx ends.
func TestWatchdogWedgedCheck(t *testing.T) {
	fakeWatchdogEnv(t)
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
			synctest.Test(t, func(t *testing.T) {
				var out sink
				release := make(chan struct{})
				defer close(release)
				w := runWatchdog(notify.NewWithSink(nil, out.send), tc.check(release))
				time.Sleep(500 * time.Millisecond)
				synctest.Wait()
				if got := out.take(); len(got) != 0 {
					t.Fatalf("sent %v with a wedged check", got)
				}
				w.cancel()
				if !w.returned() {
					t.Fatal("Watchdog did not return after ctx ended, with a wedged check")
				}
			})
		})
	}
}

func TestWatchdogNilCheck(t *testing.T) {
	fakeWatchdogEnv(t)
	synctest.Test(t, func(t *testing.T) {
		var out sink
		t0 := time.Now()
		w := runWatchdog(notify.NewWithSink(nil, out.send), nil)
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		wantPings(t, out.take(), t0, 0, 100*time.Millisecond)
		w.stop()
	})
}
