package bgp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// captureHandler keeps the records it handles.
type captureHandler struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (h *captureHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

func (h *captureHandler) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		out = append(out, r.Level.String()+" "+r.Message)
	}
	return out
}

type nilStringer struct{ s string }

func (n *nilStringer) String() string { return n.s }

func TestLoggerFields(t *testing.T) {
	h := &captureHandler{level: slog.LevelDebug}
	a := newSlogLogger(slog.New(h), nil)
	var np *nilStringer
	a.Warn("hello", gobgplog.Fields{
		"Topic": "Peer",
		"Key":   "192.0.2.1",
		"Err":   errors.New("boom"),
		"IP":    net.ParseIP("2001:db8::1"),
		"Nil":   np,
		"Count": 3,
	})
	if len(h.recs) != 1 {
		t.Fatalf("%d records", len(h.recs))
	}
	r := h.recs[0]
	if r.Level != slog.LevelWarn || r.Message != "hello" {
		t.Errorf("record %v %q", r.Level, r.Message)
	}
	var got []string
	r.Attrs(func(a slog.Attr) bool {
		got = append(got, a.Key+"="+a.Value.String())
		return true
	})
	want := []string{"count=3", "error=boom", "ip=2001:db8::1", "key=192.0.2.1", "nil=<nil>", "topic=Peer"}
	if !slices.Equal(got, want) {
		t.Errorf("attrs %v, want %v", got, want)
	}
}

func TestSnakeKey(t *testing.T) {
	for in, want := range map[string]string{
		"Topic":      "topic",
		"Key":        "key",
		"Err":        "error",
		"Error":      "error",
		"adminState": "admin_state",
		"OldLevel":   "old_level",
		"RouterID":   "router_id",
		"IPAddr":     "ip_addr",
		"IP":         "ip",
		"Peer2Peer":  "peer2_peer",
		"as_path":    "as_path",
	} {
		if got := snakeKey(in); got != want {
			t.Errorf("snakeKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoggerLevels(t *testing.T) {
	h := &captureHandler{level: slog.LevelInfo}
	a := newSlogLogger(slog.New(h), nil)
	if got := a.GetLevel(); got != gobgplog.InfoLevel {
		t.Errorf("GetLevel with an info handler = %v", got)
	}
	a.Debug("d", nil)
	a.Info("i", nil)
	a.Warn("w", nil)
	a.Error("e", nil)
	if got, want := h.messages(), []string{"INFO i", "WARN w", "ERROR e"}; !slices.Equal(got, want) {
		t.Errorf("logged %v, want %v", got, want)
	}

	a.SetLevel(gobgplog.WarnLevel)
	if got := a.GetLevel(); got != gobgplog.WarnLevel {
		t.Errorf("GetLevel after SetLevel(warn) = %v", got)
	}
	a.Info("i2", nil)
	a.Warn("w2", nil)
	if got := h.messages(); got[len(got)-1] != "WARN w2" || slices.Contains(got, "INFO i2") {
		t.Errorf("after SetLevel(warn): %v", got)
	}
	// SetLevel cannot make the handler more verbose.
	a.SetLevel(gobgplog.DebugLevel)
	if got := a.GetLevel(); got != gobgplog.InfoLevel {
		t.Errorf("GetLevel after SetLevel(debug) on an info handler = %v", got)
	}

	h2 := &captureHandler{level: slog.LevelDebug}
	if got := newSlogLogger(slog.New(h2), nil).GetLevel(); got != gobgplog.DebugLevel {
		t.Errorf("GetLevel with a debug handler = %v", got)
	}
	h3 := &captureHandler{level: slog.LevelError}
	if got := newSlogLogger(slog.New(h3), nil).GetLevel(); got != gobgplog.ErrorLevel {
		t.Errorf("GetLevel with an error handler = %v", got)
	}
}

func TestLoggerPanicFatal(t *testing.T) {
	h := &captureHandler{level: slog.LevelInfo}
	a := newSlogLogger(slog.New(h), nil)
	code := -1
	a.exit = func(c int) { code = c }
	a.Fatal("fatal", gobgplog.Fields{"Topic": "x"})
	if code != 1 {
		t.Errorf("Fatal exit code %d", code)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Panic did not panic")
			}
		}()
		a.Panic("code logic bug", nil)
	}()
	if got, want := h.messages(), []string{"ERROR fatal", "ERROR code logic bug"}; !slices.Equal(got, want) {
		t.Errorf("logged %v, want %v", got, want)
	}
}

func TestLoggerPeerDownHook(t *testing.T) {
	// The hook sees GoBGP's "Peer Down" even when info is not logged.
	h := &captureHandler{level: slog.LevelError}
	var got []string
	a := newSlogLogger(slog.New(h), func(addr, reason string) { got = append(got, addr+" "+reason) })
	a.Info("Peer Down", gobgplog.Fields{"Topic": "Peer", "Key": "192.0.2.1", "State": "BGP_FSM_ESTABLISHED", "Reason": "hold-timer-expired"})
	a.Info("Peer Up", gobgplog.Fields{"Topic": "Peer", "Key": "192.0.2.1"})
	if want := []string{"192.0.2.1 hold-timer-expired"}; !slices.Equal(got, want) {
		t.Errorf("hook got %v, want %v", got, want)
	}
	if len(h.messages()) != 0 {
		t.Errorf("logged %v at error level", h.messages())
	}
}
