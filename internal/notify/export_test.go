package notify

import "log/slog"

// NewWithSink is New with every datagram handed to sink instead of sent to
// NOTIFY_SOCKET (which must still be set), so that the watchdog's timer
// logic runs on testing/synctest's fake clock.
func NewWithSink(log *slog.Logger, sink func(msg string) error) *Notifier {
	n := New(log)
	n.sink = sink
	return n
}
