// Package testutil holds the helpers that tests across virtbgp share: one
// polling helper for conditions on real parts (sessions, libvirt, files) and
// one log buffer safe for concurrent use. Timer logic does not poll: it runs
// on a fake clock with testing/synctest.
package testutil

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// Eventually calls cond every 10ms until it returns "" and fails the test
// with cond's last message if that has not happened within timeout. cond
// says what is still wrong.
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitFor is Eventually for a condition without a message: it fails the
// test naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, timeout, func() string {
		if cond() {
			return ""
		}
		return "still waiting for " + what
	})
}

// SyncBuffer is a log destination safe for concurrent writes and reads.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns a debug-level text logger writing to a new SyncBuffer, and
// that buffer.
func Logger() (*slog.Logger, *SyncBuffer) {
	b := &SyncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
