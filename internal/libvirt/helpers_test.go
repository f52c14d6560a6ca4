package libvirt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/reconcile"
)

// testURI is libvirt's in-process test driver: every connection of this
// process shares one state, and events made on one connection reach the
// callbacks of all others.
const testURI = "test:///default"

// logSink is an io.Writer for a slog handler that forwards lines to t.Log
// while the test runs (the process-wide event loop goroutine may keep the
// logger of the first adapter) and remembers every line and the warnings.
type logSink struct {
	mu    sync.Mutex
	t     testing.TB
	done  bool
	lines []string
	warns []string
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	line := string(bytes.TrimRight(p, "\n"))
	s.lines = append(s.lines, line)
	if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
		s.warns = append(s.warns, line)
	}
	if !s.done {
		s.t.Log(line)
	}
	return len(p), nil
}

// warnings returns the logged warnings and errors that contain substr.
func (s *logSink) warnings(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, w := range s.warns {
		if strings.Contains(w, substr) {
			out = append(out, w)
		}
	}
	return out
}

// mark returns how many lines were logged so far: an index for since.
func (s *logSink) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// since returns the lines logged from index i on.
func (s *logSink) since(i int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines[i:])
}

func newTestLogger(t testing.TB, level slog.Level) (*slog.Logger, *logSink) {
	sink := &logSink{t: t}
	t.Cleanup(func() {
		sink.mu.Lock()
		sink.done = true
		sink.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: level})), sink
}

// startAdapter creates an adapter, runs it until the test ends and waits for
// the first connection. At cleanup it checks that Run returned ctx.Err()
// and that no connection leak was logged.
func startAdapter(t testing.TB, uri string, level slog.Level, opts ...Option) (*Adapter, *logSink) {
	t.Helper()
	log, sink := newTestLogger(t, level)
	a := New(uri, log, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
		if a.Connected() {
			t.Errorf("still connected after Run returned")
		}
		if w := sink.warnings("leak"); len(w) > 0 {
			t.Errorf("connection leak logged: %q", w)
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := a.WaitConnected(wctx); err != nil {
		t.Fatalf("adapter did not connect to %s: %v", uri, err)
	}
	return a, sink
}

// openConn opens a client connection of the test's own, closed at cleanup.
func openConn(t *testing.T, uri string) *lv.Connect {
	t.Helper()
	c, err := lv.NewConnect(uri)
	if err != nil {
		t.Fatalf("open %s: %v", uri, err)
	}
	t.Cleanup(func() {
		if _, err := c.Close(); err != nil {
			t.Logf("close test connection: %v", err)
		}
	})
	return c
}

// domainXML is a diskless domain for libvirt's test driver.
func domainXML(name string) string {
	return fmt.Sprintf("<domain type='test'><name>%s</name><memory>65536</memory><os><type>hvm</type></os></domain>", name)
}

// uniqueName returns a domain name unique within the process: all tests
// share the state of test:///default.
func uniqueName(t *testing.T) string {
	return fmt.Sprintf("vbgp-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
}

func domUUID(t *testing.T, d *lv.Domain) string {
	t.Helper()
	u, err := d.GetUUIDString()
	if err != nil {
		t.Fatalf("GetUUIDString: %v", err)
	}
	return u
}

// waitHint reads hints until one for uuid arrives and checks its event.
// Full-resync hints are skipped; hints for other domains are skipped too.
func waitHint(t *testing.T, a *Adapter, uuid, event string) reconcile.Hint {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case h := <-a.Hints():
			if h.All || h.UUID != uuid {
				continue
			}
			if h.Event != event {
				t.Fatalf("hint for %s: event %q, want %q", uuid, h.Event, event)
			}
			return h
		case <-timeout:
			t.Fatalf("no hint %q for %s within 5s", event, uuid)
		}
	}
}

// waitAllHint reads hints until a full-resync hint arrives.
func waitAllHint(t *testing.T, a *Adapter, timeout time.Duration) reconcile.Hint {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case h := <-a.Hints():
			if h.All {
				return h
			}
		case <-deadline:
			t.Fatalf("no Hint{All: true} within %v", timeout)
		}
	}
}

// drainHints discards the hints that are queued right now.
func drainHints(a *Adapter) {
	for {
		select {
		case <-a.Hints():
		default:
			return
		}
	}
}

// checkDomain asserts what Domain and Domains report for uuid.
func checkDomain(t *testing.T, a *Adapter, uuid, name string, state reconcile.State, reason string) {
	t.Helper()
	ctx := context.Background()
	d, found, err := a.Domain(ctx, uuid)
	if err != nil || !found {
		t.Fatalf("Domain(%s) = found %v, err %v", uuid, found, err)
	}
	want := reconcile.Domain{Name: name, UUID: uuid, State: state, Reason: reason}
	if d != want {
		t.Fatalf("Domain(%s) = %+v, want %+v", uuid, d, want)
	}
	all, err := a.Domains(ctx)
	if err != nil {
		t.Fatalf("Domains: %v", err)
	}
	for _, d := range all {
		if d.UUID == uuid {
			if d != want {
				t.Fatalf("Domains() has %+v, want %+v", d, want)
			}
			return
		}
	}
	t.Fatalf("Domains() lacks %s (%s): %+v", name, uuid, all)
}
