// Package notify tells systemd what the daemon is doing (the sd_notify(3)
// protocol: READY, STATUS, RELOADING, STOPPING) and feeds the service
// watchdog while the daemon is healthy. It wraps
// github.com/coreos/go-systemd/v22/daemon.
//
// Everything is a no-op when NOTIFY_SOCKET is unset (not started by systemd,
// or a unit without Type=notify), and every failure is logged, never
// returned: losing contact with the service manager must not stop the
// daemon. A nil *Notifier is valid and does nothing.
//
// Use in the daemon, with the unit systemd/virtbgp.service (Type=notify,
// NotifyAccess=main, WatchdogSec=30s):
//
//	n := notify.New(log.With("part", "systemd"))
//	go n.Watchdog(ctx, loopAnswers) // loopAnswers round-trips through the main loop
//	... first full sync done ...
//	n.Ready("announcing 12 routes to 2 peers")
//	... SIGHUP:  n.Reloading(); reload; n.Ready("reloaded: ...")
//	... SIGTERM: n.Stopping(); shut down
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Notifier sends state changes and watchdog pings to systemd.
type Notifier struct {
	log *slog.Logger
	// sink, when set, gets each datagram instead of NOTIFY_SOCKET (tests
	// on a fake clock).
	sink func(msg string) error
}

// New returns a Notifier that logs its failures to log (nil: discarded).
func New(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{log: log}
}

// Enabled reports whether a service manager listens (NOTIFY_SOCKET is set).
func (n *Notifier) Enabled() bool {
	return n != nil && os.Getenv("NOTIFY_SOCKET") != ""
}

// Ready says that start-up (the first full sync) or a reload is complete:
// one datagram "READY=1", with "STATUS=status" on a second line when status
// is not empty. systemd then considers the unit started (and arms the
// watchdog) or the reload finished.
func (n *Notifier) Ready(status string) {
	msg := daemon.SdNotifyReady
	if status != "" {
		msg += "\nSTATUS=" + oneLine(status)
	}
	n.send(msg)
}

// Status sets the free-form status line `systemctl status` shows
// ("STATUS=status"; an empty status clears it).
func (n *Notifier) Status(status string) {
	n.send("STATUS=" + oneLine(status))
}

// Reloading says that a configuration reload starts: "RELOADING=1" and, in
// the same datagram, "MONOTONIC_USEC=" with the current CLOCK_MONOTONIC
// time in microseconds, which systemd >= 253 requires to pair the message
// with the reload it asked for (Type=notify-reload) and older versions
// ignore. Call Ready when the reload is done, whether it succeeded or not.
func (n *Notifier) Reloading() {
	if !n.Enabled() {
		return
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		n.log.Warn("cannot read the monotonic clock", "error", err)
		n.send(daemon.SdNotifyReloading)
		return
	}
	usec := ts.Nano() / int64(time.Microsecond)
	n.send(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", daemon.SdNotifyReloading, usec))
}

// Stopping says that the daemon shuts down ("STOPPING=1").
func (n *Notifier) Stopping() {
	n.send(daemon.SdNotifyStopping)
}

// Watchdog feeds the systemd watchdog until ctx ends. When systemd set
// WATCHDOG_USEC for this process (WatchdogSec= in the unit; WATCHDOG_PID,
// when set, must be this process), it calls healthy every WATCHDOG_USEC/2
// and sends "WATCHDOG=1" only when healthy returns true. healthy gets a
// context that ends after WATCHDOG_USEC/2; a check that has not answered
// by then counts as failed. So a wedged main loop stops the pings, and
// systemd kills the service (SIGABRT: Go prints every goroutine's stack to
// the journal) and restarts it (Restart=on-failure).
//
// A nil healthy counts as always healthy: the pings then only prove that
// the process runs.
//
// Watchdog returns at once when no watchdog is configured for this process
// or NOTIFY_SOCKET is unset, otherwise when ctx ends. Run it in its own
// goroutine.
func (n *Notifier) Watchdog(ctx context.Context, healthy func(context.Context) bool) {
	if !n.Enabled() {
		return
	}
	if healthy == nil {
		healthy = func(context.Context) bool { return true }
	}
	timeout, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("bad WATCHDOG_USEC or WATCHDOG_PID; not pinging the systemd watchdog", "error", err)
		return
	}
	if timeout == 0 {
		n.log.Debug("systemd watchdog not enabled for this process")
		return
	}
	every := timeout / 2
	n.log.Debug("systemd watchdog enabled", "timeout", timeout, "ping_every", every)

	tick := time.NewTicker(every)
	defer tick.Stop()
	wasHealthy := true
	for {
		ok := check(ctx, healthy, every)
		if ctx.Err() != nil {
			return
		}
		switch {
		case ok && !wasHealthy:
			n.log.Info("health check passes again; systemd watchdog pings resume")
		case !ok && wasHealthy:
			n.log.Warn("health check failed; withholding systemd watchdog pings",
				"reason", "systemd restarts virtbgp if this lasts the watchdog timeout", "timeout", timeout)
		}
		wasHealthy = ok
		if ok {
			n.send(daemon.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check runs healthy with a deadline. It returns false when healthy says
// so, when the deadline passes first, or when ctx ends; a healthy that
// ignores its context is left running (and its answer dropped) rather than
// blocking the watchdog loop.
func check(ctx context.Context, healthy func(context.Context) bool, timeout time.Duration) bool {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	answer := make(chan bool, 1)
	go func() { answer <- healthy(cctx) }()
	select {
	case ok := <-answer:
		return ok && cctx.Err() == nil
	case <-cctx.Done():
		return false
	}
}

// send sends one datagram to NOTIFY_SOCKET, if set, and logs a failure.
func (n *Notifier) send(msg string) {
	if !n.Enabled() {
		return
	}
	var err error
	if n.sink != nil {
		err = n.sink(msg)
	} else {
		_, err = daemon.SdNotify(false, msg)
	}
	if err != nil {
		n.log.Warn("systemd notify failed", "notification", strings.ReplaceAll(msg, "\n", " "), "error", err)
	}
}

// oneLine keeps a status on one line by turning control characters into
// spaces: a newline would start a new assignment in the datagram (a status
// could otherwise say READY=1).
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}
