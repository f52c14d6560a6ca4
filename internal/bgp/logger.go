package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// levelFollowHandler marks the adapter level as "whatever the slog handler
// enables" (no SetLevel call yet).
const levelFollowHandler = -1

// slogLogger adapts a *slog.Logger to GoBGP's pkg/log.Logger interface.
// GoBGP's log fields become slog attributes, sorted by key, with virtbgp's
// key style: snake_case ("Topic" -> "topic", "adminState" -> "admin_state")
// and "error" for an error. GoBGP's Panic
// logs at error level and then panics, its Fatal logs at error level and
// exits the process, as the logrus-based default logger does: GoBGP only
// uses them for "code logic bug" situations it cannot continue from.
type slogLogger struct {
	l *slog.Logger
	// level is a gobgplog.LogLevel set by SetLevel, or levelFollowHandler.
	level atomic.Int32
	// onPeerDown, if set, receives the neighbor address and reason of
	// GoBGP's "Peer Down" message, which is the only place GoBGP reports why
	// a session went down: the WatchEvent peer event leaves out the reason
	// GoBGP has (server.go WatchEvent), and ListPeer has none. TestPeers
	// fails if GoBGP renames the message or its Key and Reason fields.
	onPeerDown func(addr, reason string)
	// onNotification, if set, receives the neighbor address and a reason
	// of each NOTIFICATION sent or received (peererror.go).
	onNotification func(addr, reason string)
	// exit is os.Exit; replaced in tests.
	exit func(code int)
}

var _ gobgplog.Logger = (*slogLogger)(nil)

func newSlogLogger(l *slog.Logger, onPeerDown func(addr, reason string)) *slogLogger {
	a := &slogLogger{l: l, onPeerDown: onPeerDown, exit: os.Exit}
	a.level.Store(levelFollowHandler)
	return a
}

// Panic logs at error level and panics with msg.
func (a *slogLogger) Panic(msg string, fields gobgplog.Fields) {
	a.l.LogAttrs(context.Background(), slog.LevelError, msg, append(attrs(fields), slog.String("gobgp_level", "panic"))...)
	panic(fmt.Sprintf("gobgp: %s", msg))
}

// Fatal logs at error level and exits the process with status 1.
func (a *slogLogger) Fatal(msg string, fields gobgplog.Fields) {
	a.l.LogAttrs(context.Background(), slog.LevelError, msg, append(attrs(fields), slog.String("gobgp_level", "fatal"))...)
	a.exit(1)
}

// Error logs at slog.LevelError.
func (a *slogLogger) Error(msg string, fields gobgplog.Fields) {
	a.log(gobgplog.ErrorLevel, slog.LevelError, msg, fields)
}

// Warn logs at slog.LevelWarn.
func (a *slogLogger) Warn(msg string, fields gobgplog.Fields) {
	if a.onNotification != nil {
		if addr, reason, ok := notificationReason(msg, fields); ok {
			a.onNotification(addr, reason)
		}
	}
	a.log(gobgplog.WarnLevel, slog.LevelWarn, msg, fields)
}

// Info logs at slog.LevelInfo.
func (a *slogLogger) Info(msg string, fields gobgplog.Fields) {
	if msg == "Peer Down" && a.onPeerDown != nil {
		addr, _ := fields["Key"].(string)
		reason, _ := fields["Reason"].(string)
		if addr != "" {
			a.onPeerDown(addr, reason)
		}
	}
	a.log(gobgplog.InfoLevel, slog.LevelInfo, msg, fields)
}

// Debug logs at slog.LevelDebug.
func (a *slogLogger) Debug(msg string, fields gobgplog.Fields) {
	a.log(gobgplog.DebugLevel, slog.LevelDebug, msg, fields)
}

// SetLevel limits what GoBGP logs further than the slog handler does. The
// handler's own level still applies: SetLevel cannot make a handler at info
// level print debug messages.
func (a *slogLogger) SetLevel(level gobgplog.LogLevel) {
	a.level.Store(int32(level))
}

// GetLevel reports the most verbose level that is logged: the level given
// to SetLevel, or else the most verbose level the slog handler enables.
// GoBGP checks it before building expensive debug messages.
func (a *slogLogger) GetLevel() gobgplog.LogLevel {
	h := a.handlerLevel()
	if v := a.level.Load(); v != levelFollowHandler && gobgplog.LogLevel(v) < h {
		return gobgplog.LogLevel(v)
	}
	return h
}

func (a *slogLogger) handlerLevel() gobgplog.LogLevel {
	ctx := context.Background()
	switch {
	case a.l.Enabled(ctx, slog.LevelDebug):
		return gobgplog.DebugLevel
	case a.l.Enabled(ctx, slog.LevelInfo):
		return gobgplog.InfoLevel
	case a.l.Enabled(ctx, slog.LevelWarn):
		return gobgplog.WarnLevel
	}
	return gobgplog.ErrorLevel
}

func (a *slogLogger) log(gl gobgplog.LogLevel, sl slog.Level, msg string, fields gobgplog.Fields) {
	if v := a.level.Load(); v != levelFollowHandler && gl > gobgplog.LogLevel(v) {
		return
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, sl) {
		return
	}
	a.l.LogAttrs(ctx, sl, msg, attrs(fields)...)
}

// attrs turns GoBGP's fields into slog attributes with snake_case keys,
// sorted by key, so that the output is stable. Errors and Stringers become
// strings (GoBGP passes paths, IPs and messages that render badly or hugely
// as JSON).
func attrs(fields gobgplog.Fields) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	out := make([]slog.Attr, 0, len(fields))
	for k, v := range fields {
		out = append(out, attr(snakeKey(k), v))
	}
	slices.SortFunc(out, func(a, b slog.Attr) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// snakeKey turns one of GoBGP's field names into virtbgp's key style:
// "Topic" -> "topic", "adminState" -> "admin_state", "RouterID" ->
// "router_id", "IPAddr" -> "ip_addr"; "Err" and "Error" -> "error".
func snakeKey(k string) string {
	switch k {
	case "Err", "err", "Error":
		return "error"
	}
	var b strings.Builder
	b.Grow(len(k) + 4)
	for i := range len(k) {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			// A word starts at an upper-case letter after a lower-case
			// letter or digit, or at the last upper-case letter of an
			// acronym that a lower-case letter follows.
			if i > 0 {
				prev := k[i-1]
				lowerBefore := 'a' <= prev && prev <= 'z' || '0' <= prev && prev <= '9'
				acronymEnd := 'A' <= prev && prev <= 'Z' && i+1 < len(k) && 'a' <= k[i+1] && k[i+1] <= 'z'
				if lowerBefore || acronymEnd {
					b.WriteByte('_')
				}
			}
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

func attr(k string, v any) slog.Attr {
	switch v := v.(type) {
	case nil:
		return slog.Any(k, nil)
	case string:
		return slog.String(k, v)
	case error:
		return slog.String(k, safeString(v.Error))
	case fmt.Stringer:
		return slog.String(k, safeString(v.String))
	}
	return slog.Any(k, v)
}

// safeString calls f, turning a panic (a nil pointer with a String method)
// into a placeholder.
func safeString(f func() string) (s string) {
	defer func() {
		if recover() != nil {
			s = "<nil>"
		}
	}()
	return f()
}

// NewGoBGPLogger returns GoBGP's logger interface writing to l, for other
// in-process GoBGP servers (test routers).
func NewGoBGPLogger(l *slog.Logger) gobgplog.Logger { return newSlogLogger(l, nil) }
