package lab

import (
	"cmp"
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

// VirtbgpConfig is what a test chooses of a virtbgp's config; the lab fills
// in the rest: libvirt URI (the host's libvirtd), AS number and router ID
// (the host's), and four peers, BIRD and FRR over IPv4 (families [ipv4]) and
// IPv6 (families [ipv6]), each with HoldTime.
type VirtbgpConfig struct {
	// Mapping is the mapping file or directory (required). Relative paths
	// are relative to the working directory.
	Mapping string `json:"mapping"`
	// Paused is policy.paused: "" (the default, withdraw), "withdraw" or
	// "keep".
	Paused string `json:"paused,omitempty"`
	// StandbyPrepend is policy.standby-prepend; nil leaves the default.
	StandbyPrepend *int `json:"standby_prepend,omitempty"`
	// HoldTime of every session; 0 means 9s.
	HoldTime time.Duration `json:"hold_time,omitempty"`
	// NoGracefulRestart turns graceful restart off (it is on by default).
	NoGracefulRestart bool `json:"no_graceful_restart,omitempty"`
	// RestartTime is graceful-restart.restart-time; 0 leaves the default.
	RestartTime time.Duration `json:"restart_time,omitempty"`
	// LongLivedStaleTime is graceful-restart.long-lived-stale-time; 0
	// leaves the default (off).
	LongLivedStaleTime time.Duration `json:"long_lived_stale_time,omitempty"`
	// ResyncInterval is resync-interval; 0 leaves the default, negative
	// disables the periodic resync.
	ResyncInterval time.Duration `json:"resync_interval,omitempty"`
	// StatusListen is status.listen (an address in the host's namespace).
	StatusListen string `json:"status_listen,omitempty"`
	// NoMappingWatch sets mapping.watch to false (reload on SIGHUP only).
	NoMappingWatch bool `json:"no_mapping_watch,omitempty"`
	// MappingExtra is YAML added under the mapping section, indented by two
	// spaces (mapping.metadata, mapping.nova).
	MappingExtra string `json:"mapping_extra,omitempty"`
	// GracefulShutdownTime is drain.graceful-shutdown-time; 0 leaves the
	// default, negative means 0.
	GracefulShutdownTime time.Duration `json:"graceful_shutdown_time,omitempty"`
	// LogLevel is --log-level; "" means debug.
	LogLevel string `json:"log_level,omitempty"`
	// Extra is appended to the generated config verbatim (top-level YAML
	// keys the fields above do not cover).
	Extra string `json:"extra,omitempty"`
	// LibvirtURI replaces the host's libvirtd (for example a test-driver
	// libvirtd of a benchmark); empty: the host's.
	LibvirtURI string `json:"libvirt_uri,omitempty"`
	// Peers are the ToR addresses to peer with, out of BIRDv4, BIRDv6,
	// FRRv4 and FRRv6 (on host B, the ToRs' addresses on its link stand in
	// for them: [Host.ToR]); empty: all four.
	Peers []netip.Addr `json:"peers,omitempty"`
	// PeerExtra is YAML added to the peer with that ToR address (as in
	// Peers), inside its flow mapping: "export: {med: 5}".
	PeerExtra map[netip.Addr]string `json:"peer_extra,omitempty"`
	// Binary is a virtbgp binary to run instead of the lab's (a benchmark's
	// build of an earlier revision); empty: the lab's.
	Binary string `json:"binary,omitempty"`
	// Env is added to virtbgp's environment ("VIRTBGP_CPUPROFILE=file").
	Env []string `json:"env,omitempty"`
}

func virtbgpProc(h *Host) string { return "virtbgp-" + h.Name }

// VirtbgpConfigPath is the config file the lab writes for the host's
// virtbgp; VirtbgpLogPath the file its output goes to (appended across
// restarts).
func (h *Host) VirtbgpConfigPath() string { return filepath.Join(h.Dir, "virtbgp.yaml") }

// VirtbgpLogPath is the file the host's virtbgp logs to.
func (h *Host) VirtbgpLogPath() string { return filepath.Join(h.Dir, "virtbgp.log") }

// VirtbgpSocket is the control socket of the host's virtbgp (virtbgp
// status|drain|undrain|reload --socket ...).
func (h *Host) VirtbgpSocket() string { return filepath.Join(h.Dir, "virtbgp.sock") }

// VirtbgpStateDir is the state-dir of the host's virtbgp.
func (h *Host) VirtbgpStateDir() string { return filepath.Join(h.Dir, "virtbgp-state") }

// VirtbgpYAML renders the virtbgp config for this host: its own libvirtd,
// AS, router ID, control socket and state directory (two virtbgps on one
// machine must not share the defaults in /run and /var/lib).
func (h *Host) VirtbgpYAML(c VirtbgpConfig) (string, error) {
	if c.Mapping == "" {
		return "", fmt.Errorf("virtbgp config of %s: no mapping", h.Name)
	}
	mp, err := filepath.Abs(c.Mapping)
	if err != nil {
		return "", fmt.Errorf("virtbgp config of %s: %w", h.Name, err)
	}
	hold := c.HoldTime
	if hold == 0 {
		hold = 9 * time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# virtbgp on lab host %s (written by integration/lab)\nversion: 1\n", h.Name)
	uri := h.URI
	if c.LibvirtURI != "" {
		uri = c.LibvirtURI
	}
	fmt.Fprintf(&b, "libvirt:\n  uri: %q\n", uri)
	fmt.Fprintf(&b, "bgp:\n  asn: %d\n  router-id: %s\n", h.ASN, h.IPv4)
	if h.lab.opts.FRRUnnumbered {
		b.WriteString("  listen-port: 179\n") // FRR connects to the host's link-local address
	}
	fmt.Fprintf(&b, "  graceful-restart:\n    enabled: %t\n", !c.NoGracefulRestart)
	if c.RestartTime > 0 {
		fmt.Fprintf(&b, "    restart-time: %s\n", dur(c.RestartTime))
	}
	if c.LongLivedStaleTime > 0 {
		fmt.Fprintf(&b, "    long-lived-stale-time: %s\n", dur(c.LongLivedStaleTime))
	}
	b.WriteString("  peers:\n")
	tor := h.lab.opts.ToRASN
	for _, p := range []struct {
		addr, local netip.Addr
		fam         string
	}{{BIRDv4, h.IPv4, "ipv4"}, {BIRDv6, h.IPv6, "ipv6"}, {FRRv4, h.IPv4, "ipv4"}, {FRRv6, h.IPv6, "ipv6"}} {
		if len(c.Peers) > 0 && !slices.Contains(c.Peers, p.addr) {
			continue
		}
		extra := ""
		if x := c.PeerExtra[p.addr]; x != "" {
			extra = ", " + x
		}
		if h.lab.opts.FRRUnnumbered && (p.addr == FRRv4 || p.addr == FRRv6) {
			// One unnumbered session with FRR, keyed FRRv4 in PeerExtra.
			if p.addr == FRRv4 {
				fmt.Fprintf(&b, "    - {interface: eth0, asn: %d, hold-time: %s%s}\n", tor, dur(hold), extra)
			}
			continue
		}
		if h.lab.opts.OneSessionPerToR {
			if p.fam == "ipv6" {
				continue
			}
			p.fam = "ipv4, ipv6"
		}
		fmt.Fprintf(&b, "    - {address: %q, asn: %d, families: [%s], hold-time: %s, local-address: %q%s}\n",
			h.ToR(p.addr), tor, p.fam, dur(hold), p.local, extra)
	}
	fmt.Fprintf(&b, "mapping:\n  path: %q\n", mp)
	if c.NoMappingWatch {
		b.WriteString("  watch: false\n")
	}
	if c.MappingExtra != "" {
		for _, line := range strings.Split(strings.TrimRight(c.MappingExtra, "\n"), "\n") {
			b.WriteString("  " + line + "\n")
		}
	}
	fmt.Fprintf(&b, "state-dir: %q\ncontrol:\n  socket: %q\n", h.VirtbgpStateDir(), h.VirtbgpSocket())
	switch {
	case c.GracefulShutdownTime < 0:
		b.WriteString("drain:\n  graceful-shutdown-time: 0\n")
	case c.GracefulShutdownTime > 0:
		fmt.Fprintf(&b, "drain:\n  graceful-shutdown-time: %s\n", dur(c.GracefulShutdownTime))
	}
	if c.Paused != "" || c.StandbyPrepend != nil {
		b.WriteString("policy:\n")
		if c.Paused != "" {
			fmt.Fprintf(&b, "  paused: %s\n", c.Paused)
		}
		if c.StandbyPrepend != nil {
			fmt.Fprintf(&b, "  standby-prepend: %d\n", *c.StandbyPrepend)
		}
	}
	if c.StatusListen != "" {
		fmt.Fprintf(&b, "status:\n  listen: %q\n", c.StatusListen)
	}
	switch {
	case c.ResyncInterval < 0:
		b.WriteString("resync-interval: 0\n")
	case c.ResyncInterval > 0:
		fmt.Fprintf(&b, "resync-interval: %s\n", dur(c.ResyncInterval))
	}
	if c.Extra != "" {
		b.WriteString(strings.TrimRight(c.Extra, "\n") + "\n")
	}
	return b.String(), nil
}

// dur renders a duration as virtbgp's config wants it ("9s", "1m30s").
func dur(d time.Duration) string { return d.Round(time.Second).String() }

// StartVirtbgp writes the host's virtbgp config and starts the lab's
// virtbgp binary in the host's network namespace, with the host's name:
//
//	ip netns exec <ns> unshare --uts sh -c 'hostname <ns>; exec <lab>/bin/virtbgp run --config <host>/virtbgp.yaml --log-level debug'
//
// It returns once virtbgp has loaded its config and mapping (its "starting"
// log line), or with the log's tail if it exited. Use
// [Lab.WaitEstablished] to wait for its sessions.
func (h *Host) StartVirtbgp(ctx context.Context, c VirtbgpConfig) error {
	l := h.lab
	if p := l.proc(virtbgpProc(h)); p.alive() {
		return fmt.Errorf("start virtbgp on %s: it runs (pid %d)", h.Name, p.PID)
	}
	text, err := h.VirtbgpYAML(c)
	if err != nil {
		return err
	}
	if err := os.WriteFile(h.VirtbgpConfigPath(), []byte(text), 0o644); err != nil {
		return fmt.Errorf("start virtbgp on %s: %w", h.Name, err)
	}
	level := c.LogLevel
	if level == "" {
		level = "debug"
	}
	logPath := h.VirtbgpLogPath()
	var offset int64
	if st, err := os.Stat(logPath); err == nil {
		offset = st.Size()
	}
	t0 := time.Now()
	// In the host's network namespace, and with the host's name (its own
	// UTS namespace; the PID stays virtbgp's: every step execs).
	p, err := startProcess(virtbgpProc(h), logPath, c.Env,
		"ip", "netns", "exec", h.NS, "unshare", "--uts", "/bin/sh", "-c", `hostname "$1" && shift && exec "$@"`, "sh", h.NS,
		cmp.Or(c.Binary, l.VirtbgpBinary()), "run", "--config", h.VirtbgpConfigPath(), "--log-level", level)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.virtbgp[h.Name] = c
	l.mu.Unlock()
	if err := l.track(p); err != nil {
		return err
	}
	// virtbgp logs "starting" at level info once config and mapping are
	// loaded; at a quieter level, surviving a moment has to do.
	quiet := level == "warn" || level == "error"
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err = Eventually(wctx, 10*time.Millisecond, func(context.Context) error {
		b, err := os.ReadFile(logPath)
		if err == nil && int64(len(b)) > offset && strings.Contains(string(b[offset:]), "msg=starting") {
			return nil
		}
		if quiet && p.alive() && time.Since(t0) > 300*time.Millisecond {
			return nil
		}
		if !p.alive() {
			return Permanent(fmt.Errorf("virtbgp exited: %s", Tail(logPath, 20)))
		}
		return fmt.Errorf("no \"starting\" in %s yet", logPath)
	})
	if err != nil {
		return fmt.Errorf("start virtbgp on %s: %w", h.Name, err)
	}
	l.log.Info("virtbgp started", "host", h.Name, "pid", p.PID, "config", h.VirtbgpConfigPath(), "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// VirtbgpConfig returns the config the host's virtbgp was last started
// with, and whether it was started at all.
func (h *Host) VirtbgpConfig() (VirtbgpConfig, bool) {
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	c, ok := h.lab.virtbgp[h.Name]
	return c, ok
}

// VirtbgpPID returns the PID of the host's virtbgp, or 0 if it does not run.
func (h *Host) VirtbgpPID() int {
	if p := h.lab.proc(virtbgpProc(h)); p.alive() {
		return p.PID
	}
	return 0
}

// SignalVirtbgp sends sig to the host's virtbgp (SIGHUP reloads the mapping).
func (h *Host) SignalVirtbgp(sig syscall.Signal) error {
	p := h.lab.proc(virtbgpProc(h))
	if p == nil {
		return fmt.Errorf("signal virtbgp on %s: %w", h.Name, errGone)
	}
	return p.signal(sig)
}

// StopVirtbgp stops the host's virtbgp with sig (SIGTERM if 0; SIGKILL for
// a crash) and waits until it has exited, sending SIGKILL after 10 s.
func (h *Host) StopVirtbgp(ctx context.Context, sig syscall.Signal) error {
	p := h.lab.proc(virtbgpProc(h))
	if p == nil {
		return nil
	}
	if err := p.stop(ctx, sig, 10*time.Second); err != nil {
		return fmt.Errorf("stop virtbgp on %s: %w", h.Name, err)
	}
	return nil
}

// RestartVirtbgp stops the host's virtbgp with sig and starts it again
// with the config it last started with.
func (h *Host) RestartVirtbgp(ctx context.Context, sig syscall.Signal) error {
	c, ok := h.VirtbgpConfig()
	if !ok {
		return fmt.Errorf("restart virtbgp on %s: it was never started", h.Name)
	}
	if err := h.StopVirtbgp(ctx, sig); err != nil {
		return err
	}
	return h.StartVirtbgp(ctx, c)
}

// VirtbgpCtl runs a control command of the lab's virtbgp binary against the
// host's daemon ("status", "drain", "undrain", "reload", "announce",
// "withdraw", "routes") with args, and returns its output:
//
//	<lab>/bin/virtbgp <cmd> --socket <host>/virtbgp.sock [args]
func (h *Host) VirtbgpCtl(ctx context.Context, cmd string, args ...string) (string, error) {
	out, err := run(ctx, append([]string{h.lab.VirtbgpBinary(), cmd, "--socket", h.VirtbgpSocket()}, args...)...)
	if err != nil {
		return out, fmt.Errorf("virtbgp %s on %s: %w", cmd, h.Name, err)
	}
	return out, nil
}

// StartVirtbgpAll starts virtbgp with c on both hosts and waits until both
// ToRs have established every session.
func (l *Lab) StartVirtbgpAll(ctx context.Context, c VirtbgpConfig) error {
	for _, h := range l.Hosts() {
		if err := h.StartVirtbgp(ctx, c); err != nil {
			return err
		}
	}
	return l.WaitEstablished(ctx)
}

// RoutesAnnounced returns when the virtbgp log lines first say each prefix
// was announced (msg="route announced", its time= and prefix=).
func RoutesAnnounced(lines []string) map[netip.Prefix]time.Time {
	out := map[netip.Prefix]time.Time{}
	for _, line := range lines {
		if !strings.Contains(line, `msg="route announced"`) {
			continue
		}
		var at time.Time
		var pfx netip.Prefix
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "time="); ok {
				at, _ = time.Parse(time.RFC3339Nano, v)
			}
			if v, ok := strings.CutPrefix(f, "prefix="); ok {
				pfx, _ = netip.ParsePrefix(v)
			}
		}
		if _, seen := out[pfx]; !seen && !at.IsZero() && pfx.IsValid() {
			out[pfx] = at
		}
	}
	return out
}
