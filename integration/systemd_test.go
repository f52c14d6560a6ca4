package integration

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/notify"
	"github.com/virtbgp/virtbgp/internal/testutil"
)

// notifySocket is a NOTIFY_SOCKET the test opens, as systemd would.
type notifySocket struct {
	mu    sync.Mutex
	msgs  []string
	conn  *net.UnixConn
	start time.Time
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	n := &notifySocket{conn: conn, start: time.Now()}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// barrier sends a message of its own to the socket and waits until it is
// read: the socket queues datagrams in order, so every message sent before
// has been read too.
func (n *notifySocket) barrier(t *testing.T) {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, n.conn.LocalAddr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("BARRIER=1")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the barrier message", func() bool { return n.count("BARRIER=1") == 1 })
}

func (n *notifySocket) count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.HasPrefix(m, prefix) {
			c++
		}
	}
	return c
}

// TestSystemdNotify runs the daemon under a NOTIFY_SOCKET and watchdog
// settings as systemd's Type=notify with WatchdogSec would: READY=1 comes
// once the first sync is done, watchdog pings come from the main loop, and
// STOPPING=1 on shutdown.
func TestSystemdNotify(t *testing.T) {
	l := startLab(t, e2eMapping)
	l.stopDaemon()

	ns := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000") // 200ms: a ping every ~100ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	l.notifier = notify.New(logger(t))
	stop := l.startDaemon(t) // returns after the first sync
	testutil.Eventually(t, 5*time.Second, func() string {
		if ns.count("READY=1") != 1 {
			return "no READY=1 after the first sync"
		}
		if ns.count("WATCHDOG=1") < 5 {
			return "fewer than 5 watchdog pings"
		}
		return ""
	})
	ns.mu.Lock()
	var ready string
	for _, m := range ns.msgs {
		if strings.HasPrefix(m, "READY=1") {
			ready = m
		}
	}
	ns.mu.Unlock()
	if !strings.Contains(ready, "STATUS=mapping generation 1") {
		t.Errorf("READY message %q lacks the STATUS line", ready)
	}
	stop()
	ns.barrier(t)
	if ns.count("STOPPING=1") != 1 {
		t.Errorf("no STOPPING=1 on shutdown")
	}
}
