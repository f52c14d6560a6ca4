package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// stderrIsJournal reports whether stderr is the stream systemd connected to
// the journal: JOURNAL_STREAM ("device:inode") names the file stderr is
// (systemd.exec(5)). A process whose stderr was redirected since (a shell
// pipe, a file) sees a different file and gets plain lines.
func stderrIsJournal(stderr *os.File, env string) bool {
	if env == "" || stderr == nil {
		return false
	}
	var dev, ino uint64
	if n, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); n != 2 || err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(stderr.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// syslogPriority is the sd-daemon(3) priority of a level: what `journalctl
// -p` filters on.
func syslogPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // err
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // info
	}
	return 7 // debug
}

// journalHandler prefixes each record's line with its syslog priority,
// "<4>" and so on, which journald reads from a stream (SyslogLevelPrefix=,
// on by default) and strips.
type journalHandler struct {
	inner slog.Handler
	out   *prefixWriter // shared by the handlers derived with With*
}

// prefixWriter writes each line with the prefix of the record being
// handled; mu makes the prefix and the write one step.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	line := make([]byte, 0, len(p.prefix)+len(b))
	line = append(append(line, p.prefix...), b...)
	if _, err := p.w.Write(line); err != nil {
		return 0, err
	}
	return len(b), nil
}

// newJournalHandler returns a handler that writes to w what newInner(w')
// would, each record prefixed with its priority.
func newJournalHandler(w io.Writer, newInner func(io.Writer) slog.Handler) slog.Handler {
	out := &prefixWriter{w: w}
	return &journalHandler{inner: newInner(out), out: out}
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.prefix = fmt.Appendf(h.out.prefix[:0], "<%d>", syslogPriority(r.Level))
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), out: h.out}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), out: h.out}
}

// dropTime removes the record's time: the journal stamps every line itself.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
