package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ToR restarts: a ToR stopped by PID and started again with the same
// config, as an operator's "systemctl restart bird" or "systemctl restart
// frr" does (SIGTERM), or as a crash and a supervisor's restart (SIGKILL).

// ToRRestart says when a restart of a ToR ([BIRD.Restart], [FRR.Restart])
// happened.
type ToRRestart struct {
	// Stop is when the router was signalled (FRR: when bgpd was, the first
	// of its daemons to stop).
	Stop time.Time
	// Stopped is when the last of its processes had exited.
	Stopped time.Time
	// Up is when the new processes ran their config and the router
	// listened on each of its BGP addresses again.
	Up time.Time
}

// torStopGrace is how long a ToR daemon may take to exit after SIGTERM
// before it is killed.
const torStopGrace = 10 * time.Second

// Restart restarts BIRD: it stops it with sig (SIGTERM when 0; SIGKILL for
// a crash), by PID, waits until it has exited, starts it again with the
// same config and waits until it runs and listens on its BGP addresses.
//
// On SIGTERM BIRD shuts its protocols down: each BGP session ends with a
// NOTIFICATION (Cease), and the kernel protocols remove BIRD's routes from
// table [BIRDTable] before it exits. It does not restart gracefully (that
// is "birdc graceful restart").
func (b *BIRD) Restart(ctx context.Context, sig syscall.Signal) (ToRRestart, error) {
	var r ToRRestart
	p := b.lab.proc(birdProc)
	if !p.alive() {
		return r, fmt.Errorf("restart bird: %w", errGone)
	}
	r.Stop = time.Now()
	if err := p.stop(ctx, sig, torStopGrace); err != nil {
		return r, fmt.Errorf("restart bird: %w", err)
	}
	r.Stopped = time.Now()
	b.lab.log.Info("bird stopped", "pid", p.PID, "signal", sigName(sig), "took", r.Stopped.Sub(r.Stop).Round(time.Millisecond))
	if err := b.start(ctx); err != nil {
		return r, fmt.Errorf("restart bird: %w", err)
	}
	if err := b.lab.waitListening(ctx, b.lab.torPeers(true)); err != nil {
		return r, fmt.Errorf("restart bird: %w", err)
	}
	r.Up = time.Now()
	return r, nil
}

// Restart restarts FRR as "systemctl restart frr" does: it stops bgpd, then
// zebra, each with sig (SIGTERM when 0; SIGKILL for a crash), by PID, starts
// zebra and bgpd again with the same configs and waits until both run and
// bgpd listens on its BGP addresses.
//
// On SIGTERM bgpd ends each session with a NOTIFICATION (Cease), and zebra
// removes bgpd's routes from the kernel ([FRRTable]). FRR is a
// graceful-restart helper only (docs/tor/frr.conf): it does not restart
// gracefully itself.
func (f *FRR) Restart(ctx context.Context, sig syscall.Signal) (ToRRestart, error) {
	var r ToRRestart
	old := f.pids()
	var procs []*process
	for _, name := range []string{bgpdProc, zebraProc} {
		p := f.lab.proc(name)
		if !p.alive() {
			return r, fmt.Errorf("restart frr: %s: %w", name, errGone)
		}
		procs = append(procs, p)
	}
	r.Stop = time.Now()
	for _, p := range procs {
		if err := p.stop(ctx, sig, torStopGrace); err != nil {
			return r, fmt.Errorf("restart frr: %w", err)
		}
	}
	r.Stopped = time.Now()
	// A killed daemon leaves its crash-log directory behind.
	removeFRRTmp(old)
	f.lab.log.Info("frr stopped", "zebra", old["zebra"], "bgpd", old["bgpd"], "signal", sigName(sig), "took", r.Stopped.Sub(r.Stop).Round(time.Millisecond))
	if err := f.start(ctx); err != nil {
		return r, fmt.Errorf("restart frr: %w", err)
	}
	if err := f.lab.waitListening(ctx, f.lab.torPeers(false)); err != nil {
		return r, fmt.Errorf("restart frr: %w", err)
	}
	r.Up = time.Now()
	return r, nil
}

// RestartRouter restarts r, the lab's BIRD or FRR, with sig: [BIRD.Restart]
// or [FRR.Restart].
func (l *Lab) RestartRouter(ctx context.Context, r Router, sig syscall.Signal) (ToRRestart, error) {
	switch r := r.(type) {
	case *BIRD:
		return r.Restart(ctx, sig)
	case *FRR:
		return r.Restart(ctx, sig)
	}
	return ToRRestart{}, fmt.Errorf("restart %s: not a ToR of the lab", r.Name())
}

// RouterAddrs returns the addresses of r, the lab's BIRD or FRR, that host
// h's virtbgp peers with (IPv4 and IPv6).
func (l *Lab) RouterAddrs(r Router, h *Host) []netip.Addr {
	var out []netip.Addr
	for _, p := range l.torPeers(r.Name() == "bird") {
		if p.Host == h.Name && !slices.Contains(out, p.Local) {
			out = append(out, p.Local)
		}
	}
	return out
}

// waitListening waits until the tor namespace has a TCP listener on port
// 179 of the local address of each of peers.
func (l *Lab) waitListening(ctx context.Context, peers []torPeer) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := Eventually(wctx, 20*time.Millisecond, func(ctx context.Context) error {
		out, err := run(ctx, "ip", "netns", "exec", l.TorNS, "ss", "-Hltn", "sport = :179")
		if err != nil {
			return err
		}
		have := listeners(out)
		var missing []string
		for _, p := range peers {
			if !have[p.Local] {
				missing = append(missing, p.Local.String())
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("nothing listens on port 179 of %s", strings.Join(slices.Compact(missing), ", "))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("BGP listeners: %w", err)
	}
	return nil
}

// listeners parses the output of "ss -Hltn" into the local addresses
// listened on.
func listeners(out string) map[netip.Addr]bool {
	have := map[netip.Addr]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		// 198.18.0.1:179, [fd00:198:18::1]:179, or with a zone (%br0).
		local := f[3]
		if i := strings.LastIndexByte(local, ':'); i > 0 {
			local = local[:i]
		}
		local = strings.TrimSuffix(strings.TrimPrefix(local, "["), "]")
		if i := strings.IndexByte(local, '%'); i >= 0 {
			local = local[:i]
		}
		if a, err := netip.ParseAddr(local); err == nil {
			have[a] = true
		}
	}
	return have
}

// sigName names a stop signal for the log (0 stops with SIGTERM).
func sigName(sig syscall.Signal) string {
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	return sig.String()
}
