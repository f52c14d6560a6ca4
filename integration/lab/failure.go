package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// Failure is a way a hypervisor dies, as its ToRs see it. Each one ends
// the host's virtbgp; the guests are the caller's (a dead host's guests
// are gone: destroy them).
type Failure int

const (
	// FailLinkDown: the host's link goes down (a dead host, a pulled cable,
	// a power loss): the ToRs' port to it loses carrier.
	FailLinkDown Failure = iota + 1
	// FailSilent: the link stays up and nothing the host sends arrives any
	// more (a hung kernel): the ToRs hear nothing, and their sessions end
	// when the hold timer expires.
	FailSilent
	// FailReset: the host's BGP connections are reset (a TCP RST to each
	// ToR, as from a host that rebooted before the ToR noticed), then its
	// virtbgp is gone.
	FailReset
	// FailKill: virtbgp is killed with SIGKILL and the kernel closes its
	// connections (FIN), as when a host's processes die.
	FailKill
)

// Failures are every Failure, in order.
var Failures = []Failure{FailLinkDown, FailSilent, FailReset, FailKill}

func (f Failure) String() string {
	switch f {
	case FailLinkDown:
		return "link-down"
	case FailSilent:
		return "silent"
	case FailReset:
		return "tcp-reset"
	case FailKill:
		return "kill"
	}
	return fmt.Sprintf("Failure(%d)", int(f))
}

// Fail makes the host fail in way f and ends its virtbgp, so that the
// ToRs see exactly f: for FailLinkDown the link goes down before virtbgp
// is killed, for FailSilent the host's traffic to the ToRs is dropped
// before, and for FailReset virtbgp is frozen, its connections reset and
// then it is killed. It returns when the failure took effect, as the ToRs
// can know it: when the link was down, the traffic dropped, the resets
// sent, or (FailKill) virtbgp signalled. [Host.Recover] undoes the network
// part.
func (h *Host) Fail(ctx context.Context, f Failure) (time.Time, error) {
	var err error
	var at time.Time
	switch f {
	case FailLinkDown:
		err = ipBatch(ctx, h.NS, []string{"link set eth0 down"})
	case FailSilent:
		err = ipBatch(ctx, h.NS, h.blackholes("add"))
	case FailReset:
		// Frozen, virtbgp cannot answer the resets or reconnect before it
		// is killed; ss -K sends each ToR a RST (sock_diag destroy).
		if err = h.SignalVirtbgp(syscall.SIGSTOP); err == nil {
			_, err = run(ctx, "ip", "netns", "exec", h.NS, "ss", "-K", "-t", "dport = :179")
		}
	case FailKill:
	default:
		return time.Time{}, fmt.Errorf("fail %s: unknown failure %d", h.Name, int(f))
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("fail %s (%s): %w", h.Name, f, err)
	}
	at = time.Now()
	return at, h.StopVirtbgp(ctx, syscall.SIGKILL)
}

// Recover undoes what Fail did to the host's network (its link is up and
// its traffic flows); virtbgp stays stopped.
func (h *Host) Recover(ctx context.Context) error {
	// Each of these fails when there is nothing to undo: that is fine.
	for _, c := range h.blackholes("del") {
		_ = ipBatch(ctx, h.NS, []string{c})
	}
	if err := ipBatch(ctx, h.NS, []string{"link set eth0 up"}); err != nil {
		return fmt.Errorf("recover %s: %w", h.Name, err)
	}
	return nil
}

// blackholes are the ip commands (op add or del) of the routes that drop
// whatever the host sends to the ToRs' addresses on its link.
func (h *Host) blackholes(op string) []string {
	var out []string
	for _, a := range []netip.Addr{BIRDv4, FRRv4, BIRDv6, FRRv6} {
		t := h.ToR(a)
		out = append(out, fmt.Sprintf("route %s blackhole %s/%d", op, t, t.BitLen()))
	}
	return out
}

// WaitSessionDown waits until router r has no established session with
// peer (a hypervisor address) and returns when it saw that first (it polls
// every 20 ms).
func (l *Lab) WaitSessionDown(ctx context.Context, r Router, peer netip.Addr) (time.Time, error) {
	var at time.Time
	err := Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		ss, err := r.Sessions(ctx)
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.Peer == peer && s.Established {
				return fmt.Errorf("%s: session with %s established", r.Name(), peer)
			}
		}
		at = time.Now()
		return nil
	})
	return at, err
}

// Sync returns once the monitor has reported every route change the
// kernel made before Sync was called: it adds and deletes a marker route
// and waits for both events.
func (m *RouteMonitor) Sync(ctx context.Context) error {
	table := strconv.Itoa(monitorTable)
	m.mu.Lock()
	want := m.markers + 2
	m.mu.Unlock()
	for _, op := range []string{"add", "del"} {
		if _, err := run(ctx, "ip", "-n", m.lab.TorNS, "route", op, "blackhole", monitorMarker, "table", table); err != nil {
			return fmt.Errorf("route monitor sync: %w", err)
		}
	}
	for {
		m.mu.Lock()
		n, changed := m.markers, m.changed
		m.mu.Unlock()
		if n >= want {
			return nil
		}
		select {
		case <-changed:
		case <-m.done:
			return fmt.Errorf("route monitor sync: ip monitor ended")
		case <-ctx.Done():
			return fmt.Errorf("route monitor sync: %w", ctx.Err())
		}
	}
}
