package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ExaBGPPath is the reference speaker's binary (Debian package exabgp).
const ExaBGPPath = "/usr/sbin/exabgp"

// ExaBGPConfig is what a benchmark chooses of the reference speaker.
type ExaBGPConfig struct {
	// Peers are the ToR addresses to peer with, out of BIRDv4 and FRRv4
	// (IPv4 sessions); empty: BIRDv4.
	Peers []netip.Addr
	// HoldTime of every session; 0 means 9s.
	HoldTime time.Duration
}

// ExaBGP is ExaBGP 4.2 running in a hypervisor's namespace in place of its
// virtbgp (same address, AS and router ID, so the ToRs' sessions for the
// host are the ones it comes up on), fed the classic way: a process of its
// API ("run" in its config) whose output lines are its commands,
//
//	announce route 10.0.0.1/32 next-hop self med 10 community [65000:1]
//
// The process is cat reading a FIFO that [ExaBGP.Write] writes to: the
// lines reach ExaBGP exactly as a REST API's print statements did.
type ExaBGP struct {
	// Host is the hypervisor it speaks for.
	Host *Host
	// Dir holds its config, FIFO and log (Log).
	Dir, Log string

	proc *process
	fifo *os.File
}

func exabgpProc(h *Host) string { return "exabgp-" + h.Name }

var exabgpEnv = []string{
	// As root, ExaBGP would drop to nobody; the bench reads its FIFO as root.
	"exabgp_daemon_user=root",
	"exabgp_daemon_daemonize=false",
	"exabgp_log_destination=stdout",
	"exabgp_log_level=INFO",
	// No "done" acknowledgements written back to cat (which never reads
	// them); no exabgpcli pipes.
	"exabgp_api_ack=false",
	"exabgp_api_cli=false",
}

// StartExaBGP starts ExaBGP in the host's namespace and waits until the
// ToRs of c.Peers have established their sessions with it. The host's
// virtbgp must not run (the ToRs know one speaker per host address).
func (h *Host) StartExaBGP(ctx context.Context, c ExaBGPConfig) (*ExaBGP, error) {
	l := h.lab
	if h.VirtbgpPID() != 0 {
		return nil, fmt.Errorf("start exabgp on %s: virtbgp runs there", h.Name)
	}
	if p := l.proc(exabgpProc(h)); p.alive() {
		return nil, fmt.Errorf("start exabgp on %s: it runs (pid %d)", h.Name, p.PID)
	}
	if _, err := os.Stat(ExaBGPPath); err != nil {
		return nil, fmt.Errorf("start exabgp: %w (install the Debian package exabgp; scripts/deps.sh does)", err)
	}
	peers := c.Peers
	if len(peers) == 0 {
		peers = []netip.Addr{BIRDv4}
	}
	hold := c.HoldTime
	if hold == 0 {
		hold = 9 * time.Second
	}
	e := &ExaBGP{Host: h, Dir: filepath.Join(h.Dir, "exabgp")}
	e.Log = filepath.Join(e.Dir, "exabgp.log")
	if err := os.MkdirAll(e.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start exabgp: %w", err)
	}
	fifo := filepath.Join(e.Dir, "feed.fifo")
	_ = os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return nil, fmt.Errorf("start exabgp: fifo: %w", err)
	}
	// Read-write: opening does not wait for cat, and cat never sees an
	// end of file while the bench holds it.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("start exabgp: fifo: %w", err)
	}
	e.fifo = f

	var b strings.Builder
	fmt.Fprintf(&b, "# ExaBGP on lab host %s (written by integration/lab)\n", h.Name)
	fmt.Fprintf(&b, "process feed {\n\trun /bin/cat %s;\n\tencoder text;\n}\n", fifo)
	var routers []Router
	for _, p := range peers {
		var r Router
		switch p {
		case BIRDv4:
			r = l.BIRD
		case FRRv4:
			r = l.FRR
		default:
			f.Close()
			return nil, fmt.Errorf("start exabgp: peer %s is not BIRDv4 or FRRv4", p)
		}
		routers = append(routers, r)
		fmt.Fprintf(&b, "neighbor %s {\n\trouter-id %s;\n\tlocal-address %s;\n\tlocal-as %d;\n\tpeer-as %d;\n\thold-time %d;\n",
			h.ToR(p), h.IPv4, h.IPv4, h.ASN, l.opts.ToRASN, int(hold.Seconds()))
		b.WriteString("\tfamily {\n\t\tipv4 unicast;\n\t}\n\tapi {\n\t\tprocesses [ feed ];\n\t}\n}\n")
	}
	conf := filepath.Join(e.Dir, "exabgp.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		f.Close()
		return nil, fmt.Errorf("start exabgp: %w", err)
	}
	p, err := startProcess(exabgpProc(h), e.Log, exabgpEnv, "ip", "netns", "exec", h.NS, ExaBGPPath, conf)
	if err != nil {
		f.Close()
		return nil, err
	}
	e.proc = p
	if err := l.track(p); err != nil {
		e.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.WaitSessions(wctx, slices.Compact(routers), h.IPv4); err != nil {
		e.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("start exabgp on %s: %w; its log: %s", h.Name, err, Tail(e.Log, 20))
	}
	l.log.Info("exabgp up", "host", h.Name, "pid", p.PID, "peers", peers)
	return e, nil
}

// PID returns ExaBGP's PID (the Python interpreter), or 0 if it does not
// run.
func (e *ExaBGP) PID() int {
	if e.proc.alive() {
		return e.proc.PID
	}
	return 0
}

// Write sends lines to ExaBGP through its API process, in one write (a
// pipe takes what fits and the rest as cat reads it).
func (e *ExaBGP) Write(lines ...string) error {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if _, err := e.fifo.WriteString(b.String()); err != nil {
		return fmt.Errorf("exabgp on %s: write: %w", e.Host.Name, err)
	}
	return nil
}

// Stop ends ExaBGP (SIGTERM, SIGKILL after 10 s; it ends its API process
// itself) and closes the FIFO.
func (e *ExaBGP) Stop(ctx context.Context) error {
	err := e.proc.stop(ctx, syscall.SIGTERM, 10*time.Second)
	if cerr := e.fifo.Close(); err == nil && cerr != nil && !strings.Contains(cerr.Error(), "already closed") {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("stop exabgp on %s: %w", e.Host.Name, err)
	}
	return nil
}

// AnnounceLine is the classic REST-to-ExaBGP line for a /32 or /128 with
// MED and communities ("next-hop self": the session's own address).
func AnnounceLine(p netip.Prefix, med uint32, communities []string) string {
	s := fmt.Sprintf("announce route %s next-hop self med %d", p, med)
	if len(communities) > 0 {
		s += " community [" + strings.Join(communities, " ") + "]"
	}
	return s
}

// WithdrawLine is the line that withdraws what AnnounceLine announced.
func WithdrawLine(p netip.Prefix) string {
	return fmt.Sprintf("withdraw route %s next-hop self", p)
}
