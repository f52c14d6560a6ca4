package lab

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Router is a ToR of the lab, as tests read it.
type Router interface {
	// Name is "bird" or "frr".
	Name() string
	// Routes returns every BGP path the router has, IPv4 and IPv6.
	Routes(ctx context.Context) (RIB, error)
	// Sessions returns the state of its BGP sessions with the hypervisors.
	Sessions(ctx context.Context) ([]Session, error)
	// Table is the kernel routing table of the tor namespace that the
	// router installs its best paths into.
	Table() int
}

// Session is the state of one BGP session of a ToR.
type Session struct {
	// Name is the router's name for the session: the BIRD protocol, or the
	// FRR neighbor description.
	Name string
	// Peer is the hypervisor's address (for an unnumbered session its
	// link-local address once FRR knows it, without zone).
	Peer netip.Addr
	// Interface is the ToR's port of an unnumbered session (vA), "" for
	// the others.
	Interface string
	// State is the router's word for it: Established, Active, Connect,
	// Idle, ...
	State string
	// Established is true when the session is up.
	Established bool
}

// Routers returns BIRD and FRR (BIRD only in a lab without FRR).
func (l *Lab) Routers() []Router {
	if l.opts.NoFRR {
		return []Router{l.BIRD}
	}
	return []Router{l.BIRD, l.FRR}
}

// torPeer is one BGP neighbor of a ToR: a hypervisor's IPv4 or IPv6
// address.
type torPeer struct {
	Name  string // BIRD protocol name: hvA4, hvA6, hvB4, hvB6
	Host  string // hvA
	Addr  netip.Addr
	Local netip.Addr // the ToR's own address for the session (BIRD's)
	ASN   uint32
	V6    bool
	// Both: an IPv4 session carrying IPv6 too (Options.OneSessionPerToR).
	Both bool
	// Iface: an unnumbered session on this port of the ToR
	// (Options.FRRUnnumbered; FRR only).
	Iface string
}

// torPeers lists the neighbors of BIRD (birdSide) or FRR: both
// hypervisors, IPv4 and IPv6.
func (l *Lab) torPeers(birdSide bool) []torPeer {
	var out []torPeer
	for _, h := range l.Hosts() {
		l4, l6 := h.ToR(BIRDv4), h.ToR(BIRDv6)
		if !birdSide {
			l4, l6 = h.ToR(FRRv4), h.ToR(FRRv6)
		}
		if l.opts.FRRUnnumbered && !birdSide {
			out = append(out, torPeer{Name: h.Name + "u", Host: h.Name, ASN: h.ASN, Iface: h.Link})
			continue
		}
		if l.opts.OneSessionPerToR {
			out = append(out, torPeer{Name: h.Name + "4", Host: h.Name, Addr: h.IPv4, Local: l4, ASN: h.ASN, Both: true})
			continue
		}
		out = append(out,
			torPeer{Name: h.Name + "4", Host: h.Name, Addr: h.IPv4, Local: l4, ASN: h.ASN},
			torPeer{Name: h.Name + "6", Host: h.Name, Addr: h.IPv6, Local: l6, ASN: h.ASN, V6: true})
	}
	return out
}

// WaitEstablished waits until both ToRs have established their IPv4 and
// IPv6 sessions with each of hosts (both hypervisors if none is given).
func (l *Lab) WaitEstablished(ctx context.Context, hosts ...*Host) error {
	if len(hosts) == 0 {
		hosts = l.Hosts()
	}
	var peers []netip.Addr
	for _, h := range hosts {
		peers = append(peers, h.IPv4)
		if !l.opts.OneSessionPerToR {
			peers = append(peers, h.IPv6)
		}
	}
	return l.WaitSessions(ctx, l.Routers(), peers...)
}

// WaitSessions waits until each of routers has an established session with
// each of the hypervisor addresses peers.
func (l *Lab) WaitSessions(ctx context.Context, routers []Router, peers ...netip.Addr) error {
	want := map[netip.Addr]bool{}
	for _, a := range peers {
		want[a] = true
	}
	for _, r := range routers {
		err := Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
			ss, err := r.Sessions(ctx)
			if err != nil {
				return err
			}
			var down []string
			seen := map[netip.Addr]bool{}
			for _, s := range ss {
				seen[s.Peer] = true
				if want[s.Peer] && !s.Established {
					down = append(down, fmt.Sprintf("%s %s", s.Peer, s.State))
				}
			}
			for a := range want {
				if !seen[a] {
					down = append(down, a.String()+" unknown")
				}
			}
			if len(down) > 0 {
				return fmt.Errorf("sessions not established: %s", strings.Join(down, ", "))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", r.Name(), err)
		}
	}
	return nil
}

// ---------------------------------------------------------------- BIRD

// BIRD is the lab's BIRD 2 ToR. It listens on 198.18.0.1 and
// fd00:198:18::1, installs its best paths into kernel table [BIRDTable] of
// the tor namespace, and logs every route change with millisecond
// timestamps to Log.
type BIRD struct {
	// Socket is its control socket: birdc -s Socket.
	Socket string
	// Log is its log file.
	Log string

	lab *Lab
}

const birdProc = "bird"

// Name returns "bird".
func (b *BIRD) Name() string { return "bird" }

// Table returns the kernel table BIRD installs its best paths into.
func (b *BIRD) Table() int { return BIRDTable }

// The ToR configs of the guide docs/tor, which the lab runs as they are:
// BIRD includes DocsBIRDConf; FRR's bgpd.conf has DocsFRRConf verbatim
// (FRR has no include). The lab adds only what is its own: logs, router
// IDs, kernel tables, and one neighbor per hypervisor session.
const (
	DocsBIRDConf = "docs/tor/bird.conf"
	DocsFRRConf  = "docs/tor/frr.conf"
)

// torDoc returns the absolute path and the text of a file of docs/tor.
func (l *Lab) torDoc(rel string) (path, text string, err error) {
	root, err := l.sourceRoot()
	if err != nil {
		return "", "", fmt.Errorf("ToR config: %w", err)
	}
	path = filepath.Join(root, filepath.FromSlash(rel))
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("ToR config: %w", err)
	}
	return path, string(b), nil
}

var birdConf = template.Must(template.New("bird").Parse(`# BIRD ToR of the virtbgp lab (written by integration/lab)
log "{{.Log}}" all;
timeformat base iso long ms;
timeformat log iso long ms;
timeformat protocol iso long ms;
timeformat route iso long ms;
router id {{.RouterID}};

protocol device { scan time 10; }

# Best paths into kernel table {{.Table}} of the tor namespace, so that
# "ip -ts monitor route" timestamps every best-path change.
protocol kernel kernel4 {
	kernel table {{.Table}};
	ipv4 { import none; export all; };
}
protocol kernel kernel6 {
	kernel table {{.Table}};
	ipv6 { import none; export all; };
}

# The virtbgp-facing part of the ToR, as the guide has it: filters, limits,
# timers, graceful restart, the templates virtbgp4 and virtbgp6.
include "{{.Docs}}";

# One protocol per hypervisor session. BIRD listens on its own addresses
# only (strict bind): FRR listens on the others in the same namespace.
{{- range .Peers}}

protocol bgp {{.Name}} from virtbgp{{if .Both}}46{{else if .V6}}6{{else}}4{{end}} {
	description "{{.Host}} IPv{{if .V6}}6{{else}}4{{end}}";
	local {{.Local}} as {{$.ASN}};
	neighbor {{.Addr}} as {{.ASN}};
	strict bind on;
	debug { states, routes, events };
}
{{- end}}
`))

// config renders BIRD's config.
func (b *BIRD) config() (string, error) {
	l := b.lab
	docs, _, err := l.torDoc(DocsBIRDConf)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	if err := birdConf.Execute(&sb, map[string]any{
		"Log": b.Log, "RouterID": BIRDv4, "Table": BIRDTable, "ASN": l.opts.ToRASN, "Peers": l.torPeers(true), "Docs": docs,
	}); err != nil {
		return "", fmt.Errorf("bird.conf: %w", err)
	}
	return sb.String(), nil
}

func (b *BIRD) start(ctx context.Context) error {
	l := b.lab
	t0 := time.Now()
	dir := filepath.Dir(b.Socket)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bird dir: %w", err)
	}
	conf := filepath.Join(dir, "bird.conf")
	text, err := b.config()
	if err != nil {
		return err
	}
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return fmt.Errorf("bird.conf: %w", err)
	}
	p, err := startProcess(birdProc, filepath.Join(dir, "bird.out"), nil,
		"ip", "netns", "exec", l.TorNS, "bird", "-f", "-c", conf, "-s", b.Socket, "-P", filepath.Join(dir, "bird.pid"))
	if err != nil {
		return err
	}
	if err := l.track(p); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = Eventually(wctx, 20*time.Millisecond, func(ctx context.Context) error {
		if !p.alive() {
			return Permanent(fmt.Errorf("bird exited: %s", Tail(p.Log, 20)))
		}
		out, err := b.Birdc(ctx, "show", "status")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "Daemon is up and running") {
			return fmt.Errorf("bird status: %s", out)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bird did not come up: %w", err)
	}
	l.log.Info("bird up", "pid", p.PID, "socket", b.Socket, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// PID returns BIRD's PID, or 0 if it does not run.
func (b *BIRD) PID() int {
	if p := b.lab.proc(birdProc); p != nil && p.alive() {
		return p.PID
	}
	return 0
}

// Birdc runs birdc against the lab's BIRD and returns its output. birdc
// reports errors in its output, not its exit status: an output whose first
// reply is an error becomes the error.
func (b *BIRD) Birdc(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{"birdc", "-s", b.Socket}, args...)
	out, err := run(ctx, argv...)
	if err != nil {
		return out, err
	}
	for _, bad := range []string{"Unable to connect", "syntax error", "Unknown command", "No such "} {
		if strings.Contains(out, bad) {
			return out, &CommandError{Args: argv, Err: fmt.Errorf("birdc error"), Stderr: out}
		}
	}
	return out, nil
}

// Routes returns every path in BIRD's master4 and master6 tables, with the
// peer each came from.
func (b *BIRD) Routes(ctx context.Context) (RIB, error) {
	out, err := b.Birdc(ctx, "show", "route", "all")
	if err != nil {
		return nil, fmt.Errorf("bird routes: %w", err)
	}
	rib, err := ParseBIRDRoutes(out)
	if err != nil {
		return nil, fmt.Errorf("bird routes: %w", err)
	}
	peers := map[string]netip.Addr{}
	for _, p := range b.lab.torPeers(true) {
		peers[p.Name] = p.Addr
	}
	for pfx, paths := range rib {
		for i := range paths {
			if a, ok := peers[paths[i].Source]; ok {
				paths[i].Peer = a
			}
		}
		rib[pfx] = paths
	}
	return rib, nil
}

// Sessions returns the state of BIRD's BGP protocols.
func (b *BIRD) Sessions(ctx context.Context) ([]Session, error) {
	out, err := b.Birdc(ctx, "show", "protocols")
	if err != nil {
		return nil, fmt.Errorf("bird sessions: %w", err)
	}
	peers := map[string]netip.Addr{}
	for _, p := range b.lab.torPeers(true) {
		peers[p.Name] = p.Addr
	}
	var ss []Session
	for _, p := range ParseBIRDProtocols(out) {
		if p.Proto != "BGP" {
			continue
		}
		ss = append(ss, Session{Name: p.Name, Peer: peers[p.Name], State: p.BGPState, Established: p.BGPState == "Established"})
	}
	return ss, nil
}

// BIRDProtocol is one line of birdc show protocols.
type BIRDProtocol struct {
	Name, Proto, Table, State string
	// BGPState is the BGP state (first word of Info) of a BGP protocol.
	BGPState string
	// Info is everything after the "since" time.
	Info string
}

// ParseBIRDProtocols parses the output of "birdc show protocols" with
// "timeformat protocol iso long ms" (a since time of two words).
func ParseBIRDProtocols(out string) []BIRDProtocol {
	var ps []BIRDProtocol
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] == "Name" || strings.HasPrefix(line, "BIRD ") {
			continue
		}
		p := BIRDProtocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3]}
		rest := f[4:]
		// Skip the since time: a date and a time of day, or one word.
		for len(rest) > 0 && (strings.Count(rest[0], "-") == 2 || strings.Count(rest[0], ":") == 2) {
			rest = rest[1:]
		}
		p.Info = strings.Join(rest, " ")
		if len(rest) > 0 {
			p.BGPState = rest[0]
		}
		ps = append(ps, p)
	}
	return ps
}

// ---------------------------------------------------------------- FRR

// FRR is the lab's FRR ToR: zebra and bgpd in the tor namespace, as a
// separate instance whose sockets, PID files, configs and logs all live in
// Dir (nothing in /etc/frr or /run/frr). It listens on 198.18.0.2 and
// fd00:198:18::2 and zebra installs the best paths into the main table
// ([FRRTable]) of the tor namespace.
type FRR struct {
	// Dir holds its configs, vty sockets, logs: vtysh --vty_socket Dir.
	Dir string

	lab *Lab
}

const (
	zebraProc = "frr-zebra"
	bgpdProc  = "frr-bgpd"
)

// Name returns "frr".
func (f *FRR) Name() string { return "frr" }

// Table returns the kernel table zebra installs the best paths into.
func (f *FRR) Table() int { return FRRTable }

var bgpdConf = template.Must(template.New("bgpd").Parse(`! FRR ToR of the virtbgp lab (written by integration/lab)
hostname tor-frr
log file {{.Dir}}/bgpd.log
log timestamp precision 6
!
! ---- {{.DocsPath}}, as it is ----
{{.Docs}}! ---- end of {{.DocsPath}} ----
!
! One neighbor per hypervisor session, in the peer-group of its family.
router bgp {{.ASN}}
 bgp router-id {{.RouterID}}
{{- range .Peers}}
{{- if .Iface}}
 neighbor {{.Iface}} interface remote-as {{.ASN}}
 neighbor {{.Iface}} peer-group VIRTBGPLL
 neighbor {{.Iface}} description {{.Name}}
{{- else}}
 neighbor {{.Addr}} remote-as {{.ASN}}
 neighbor {{.Addr}} peer-group VIRTBGP{{if .Both}}46{{else if .V6}}6{{else}}4{{end}}
 neighbor {{.Addr}} description {{.Name}}
{{- end}}
{{- end}}
exit
!
`))

var frrRouterBGP = regexp.MustCompile(`(?m)^router bgp (\d+)\s*$`)

// config renders bgpd's config.
func (f *FRR) config() (string, error) {
	l := f.lab
	path, docs, err := l.torDoc(DocsFRRConf)
	if err != nil {
		return "", err
	}
	m := frrRouterBGP.FindStringSubmatch(docs)
	if m == nil {
		return "", fmt.Errorf("ToR config: %s has no router bgp", path)
	}
	if m[1] != strconv.FormatUint(uint64(l.opts.ToRASN), 10) {
		return "", fmt.Errorf("ToR config: %s is for AS %s, the lab's ToRs are AS %d", path, m[1], l.opts.ToRASN)
	}
	if !strings.HasSuffix(docs, "\n") {
		docs += "\n"
	}
	var sb strings.Builder
	if err := bgpdConf.Execute(&sb, map[string]any{
		"Dir": f.Dir, "ASN": l.opts.ToRASN, "RouterID": FRRv4, "Peers": l.torPeers(false), "Docs": docs, "DocsPath": DocsFRRConf,
	}); err != nil {
		return "", fmt.Errorf("bgpd.conf: %w", err)
	}
	return sb.String(), nil
}

func (f *FRR) start(ctx context.Context) error {
	l := f.lab
	t0 := time.Now()
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return fmt.Errorf("frr dir: %w", err)
	}
	zebra := fmt.Sprintf("! FRR zebra of the virtbgp lab (written by integration/lab)\nhostname tor-frr\nlog file %s/zebra.log\nlog timestamp precision 6\n", f.Dir)
	if err := os.WriteFile(filepath.Join(f.Dir, "zebra.conf"), []byte(zebra), 0o644); err != nil {
		return fmt.Errorf("zebra.conf: %w", err)
	}
	bgpd, err := f.config()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "bgpd.conf"), []byte(bgpd), 0o644); err != nil {
		return fmt.Errorf("bgpd.conf: %w", err)
	}
	// The daemons drop to user frr (as root they would need to be in the
	// frrvty group); their directory must be theirs.
	u, err := user.Lookup("frr")
	if err != nil {
		return fmt.Errorf("frr: user frr: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(f.Dir, uid, gid); err != nil {
		return fmt.Errorf("frr dir: %w", err)
	}

	common := func(daemon string) []string {
		return []string{"ip", "netns", "exec", l.TorNS, "/usr/lib/frr/" + daemon,
			"-f", filepath.Join(f.Dir, daemon+".conf"),
			"-i", filepath.Join(f.Dir, daemon+".pid"),
			"-z", filepath.Join(f.Dir, "zserv.api"),
			"--vty_socket", f.Dir,
			"-P", "0", // no TCP vty
			"-u", "frr", "-g", "frr"}
	}
	// --v6-rr-semantics: replace IPv6 routes in place like IPv4 ones. By
	// default zebra deletes the old IPv6 route and adds the new one, which
	// a kernel route monitor would see as a moment without a route.
	zp, err := startProcess(zebraProc, filepath.Join(f.Dir, "zebra.out"), nil, append(common("zebra"), "--v6-rr-semantics")...)
	if err != nil {
		return err
	}
	if err := l.track(zp); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = Eventually(wctx, 20*time.Millisecond, func(ctx context.Context) error {
		if !zp.alive() {
			return Permanent(fmt.Errorf("zebra exited: %s", Tail(zp.Log, 20)))
		}
		if _, err := os.Stat(filepath.Join(f.Dir, "zserv.api")); err != nil {
			return err
		}
		_, err := f.vtyshDaemon(ctx, "zebra", "show version")
		return err
	})
	if err != nil {
		return fmt.Errorf("frr zebra did not come up: %w", err)
	}
	bp, err := startProcess(bgpdProc, filepath.Join(f.Dir, "bgpd.out"), nil,
		append(common("bgpd"), f.listen()...)...)
	if err != nil {
		return err
	}
	if err := l.track(bp); err != nil {
		return err
	}
	err = Eventually(wctx, 20*time.Millisecond, func(ctx context.Context) error {
		if !bp.alive() {
			return Permanent(fmt.Errorf("bgpd exited: %s", Tail(bp.Log, 20)))
		}
		// Every neighbor there: bgpd has read its whole config.
		ss, err := f.Sessions(ctx)
		if err == nil && len(ss) != len(l.torPeers(false)) {
			err = fmt.Errorf("frr has %d of %d neighbors", len(ss), len(l.torPeers(false)))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("frr bgpd did not come up: %w", err)
	}
	// bgpd runs whatever part of its config it understands: a line it
	// refused is an error of the lab (or of the guide's config).
	if errs := f.ConfigErrors(); len(errs) > 0 {
		return fmt.Errorf("frr bgpd refused its config: %s", strings.Join(errs, "; "))
	}
	l.log.Info("frr up", "zebra", zp.PID, "bgpd", bp.PID, "vty", f.Dir, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// listen returns bgpd's -l options: FRR's addresses on both hosts' links
// (BIRD listens on the others of the namespace).
func (f *FRR) listen() []string {
	var out []string
	for _, h := range f.lab.Hosts() {
		out = append(out, "-l", h.ToR(FRRv4).String(), "-l", h.ToR(FRRv6).String())
	}
	return out
}

// ConfigErrors returns what bgpd and zebra reported about their config
// files: the log lines "... on config line N: ..." and the "% ..." lines
// on their output.
func (f *FRR) ConfigErrors() []string {
	var errs []string
	for _, name := range []string{"bgpd.log", "zebra.log", "bgpd.out", "zebra.out"} {
		b, err := os.ReadFile(filepath.Join(f.Dir, name))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "on config line") || strings.HasPrefix(line, "% ") {
				errs = append(errs, name+": "+strings.TrimSpace(line))
			}
		}
	}
	return errs
}

// PIDs returns the PIDs of zebra and bgpd (0 for one that does not run).
func (f *FRR) PIDs() (zebra, bgpd int) {
	if p := f.lab.proc(zebraProc); p != nil && p.alive() {
		zebra = p.PID
	}
	if p := f.lab.proc(bgpdProc); p != nil && p.alive() {
		bgpd = p.PID
	}
	return zebra, bgpd
}

// pids returns the daemons' PIDs by name, alive or not.
func (f *FRR) pids() map[string]int {
	m := map[string]int{}
	for d, name := range map[string]string{"zebra": zebraProc, "bgpd": bgpdProc} {
		if p := f.lab.proc(name); p != nil {
			m[d] = p.PID
		}
	}
	return m
}

// removeFRRTmp removes the crash-log directories FRR daemons create in
// /var/tmp/frr (they remove them themselves only on a clean exit).
func removeFRRTmp(pids map[string]int) {
	for d, pid := range pids {
		_ = os.RemoveAll(fmt.Sprintf("/var/tmp/frr/%s.%d", d, pid))
	}
}

// Vtysh runs vtysh commands against the lab's FRR and returns the output.
func (f *FRR) Vtysh(ctx context.Context, cmds ...string) (string, error) {
	return f.vtyshDaemon(ctx, "", cmds...)
}

func (f *FRR) vtyshDaemon(ctx context.Context, daemon string, cmds ...string) (string, error) {
	argv := []string{"vtysh", "--vty_socket", f.Dir}
	if daemon != "" {
		argv = append(argv, "-d", daemon)
	}
	for _, c := range cmds {
		argv = append(argv, "-c", c)
	}
	out, err := run(ctx, argv...)
	if err != nil {
		return out, err
	}
	if strings.HasPrefix(out, "% ") || strings.Contains(out, "failed to connect") {
		return out, &CommandError{Args: argv, Err: fmt.Errorf("vtysh error"), Stderr: out}
	}
	return out, nil
}

// Routes returns every path in FRR's IPv4 and IPv6 unicast BGP tables.
func (f *FRR) Routes(ctx context.Context) (RIB, error) {
	out, err := f.Vtysh(ctx, "show bgp ipv4 unicast json detail", "show bgp ipv6 unicast json detail")
	if err != nil {
		return nil, fmt.Errorf("frr routes: %w", err)
	}
	rib, err := ParseFRRRoutes([]byte(out))
	if err != nil {
		return nil, fmt.Errorf("frr routes: %w", err)
	}
	return rib, nil
}

// Sessions returns the state of FRR's BGP neighbors.
func (f *FRR) Sessions(ctx context.Context) ([]Session, error) {
	out, err := f.Vtysh(ctx, "show bgp neighbors json")
	if err != nil {
		return nil, fmt.Errorf("frr sessions: %w", err)
	}
	ss, err := ParseFRRNeighbors([]byte(out))
	if err != nil {
		return nil, fmt.Errorf("frr sessions: %w", err)
	}
	return ss, nil
}

// ParseFRRNeighbors parses vtysh "show bgp neighbors json" into sessions
// sorted by peer address.
func ParseFRRNeighbors(out []byte) ([]Session, error) {
	var m map[string]struct {
		Desc  string `json:"nbrDesc"`
		State string `json:"bgpState"`
		// An unnumbered neighbor ("vA") has its address here, once known.
		Addr string `json:"bgpNeighborAddr"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("frr neighbors json: %w", err)
	}
	var ss []Session
	for k, v := range m {
		s := Session{Name: v.Desc, State: v.State, Established: v.State == "Established"}
		if a, err := netip.ParseAddr(k); err == nil {
			s.Peer = a
		} else {
			s.Interface = k
			s.Peer, _ = netip.ParseAddr(v.Addr)
			s.Peer = s.Peer.WithZone("")
		}
		ss = append(ss, s)
	}
	slices.SortFunc(ss, func(a, b Session) int {
		return cmp.Or(a.Peer.Compare(b.Peer), strings.Compare(a.Interface, b.Interface))
	})
	return ss, nil
}
