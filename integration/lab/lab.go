package lab

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Addresses of the lab. They are configured only inside its namespaces.
// Each hypervisor has its own routed link to the tor namespace, as a server
// has its own port on a layer-3 ToR: BIRDv4, BIRDv6, FRRv4 and FRRv6 are the
// ToRs' addresses on host A's link, and on host B's link they have the next
// ones (198.18.0.3 and .4, fd00:198:18::3 and ::4); [Host.ToR] gives the
// address of a ToR on a host's link.
var (
	BIRDv4  = netip.MustParseAddr("198.18.0.1")
	BIRDv6  = netip.MustParseAddr("fd00:198:18::1")
	FRRv4   = netip.MustParseAddr("198.18.0.2")
	FRRv6   = netip.MustParseAddr("fd00:198:18::2")
	HostAv4 = netip.MustParseAddr("198.18.0.11")
	HostAv6 = netip.MustParseAddr("fd00:198:18::11")
	HostBv4 = netip.MustParseAddr("198.18.0.12")
	HostBv6 = netip.MustParseAddr("fd00:198:18::12")
)

// Kernel routing tables of the tor namespace that the ToRs install their
// best paths into.
const (
	BIRDTable = 100 // BIRD's kernel protocols
	FRRTable  = 254 // FRR's zebra: the main table
)

// Defaults of [Options].
const (
	DefaultToRASN   = 65000
	DefaultHostAASN = 65011
	DefaultHostBASN = 65012
)

// Options configure a lab. The zero value is a good lab.
type Options struct {
	// Dir is the lab directory: configs, sockets, logs, binaries and the
	// state file. Empty: a new temporary directory. A given directory must
	// be empty, missing, or a previous lab's (taken down).
	Dir string `json:"dir"`
	// Prefix is prepended to the namespace names tor, hvA and hvB. Empty:
	// "vb<pid>-<n>-" (n counts the labs of this process), which also lets a
	// later lab clean up after this one if its process dies without Down.
	Prefix string `json:"prefix"`
	// AS numbers: of both ToRs, and of virtbgp on hvA and on hvB.
	ToRASN   uint32 `json:"tor_asn"`
	HostAASN uint32 `json:"host_a_asn"`
	HostBASN uint32 `json:"host_b_asn"`
	// TCG forces guests of type 'qemu' (software emulation) even when KVM
	// is usable. Without it, the lab uses KVM when /dev/kvm works, or the
	// environment variable VIRTBGP_LAB_TCG is set to a non-empty value.
	TCG bool `json:"tcg"`
	// SourceRoot is the root of the virtbgp module, to build the binaries
	// from. Empty: found upwards from the working directory.
	SourceRoot string `json:"source_root"`
	// VirtbgpBinary is a prebuilt virtbgp to run instead of building one
	// from SourceRoot. Empty: the environment variable VIRTBGP_LAB_VIRTBGP,
	// or build.
	VirtbgpBinary string `json:"virtbgp_binary,omitempty"`
	// NoVirtbgp neither builds nor links virtbgp: a lab of hypervisors and
	// ToRs only (to test the lab itself, or another BGP speaker).
	NoVirtbgp bool `json:"no_virtbgp,omitempty"`
	// NoFRR starts BIRD as the only ToR. FRR's zebra reads every kernel
	// route of the namespace, BIRD's table included: a measurement of BIRD
	// alone runs without it, so that it does not compete for the CPU.
	NoFRR bool `json:"no_frr,omitempty"`
	// OneSessionPerToR gives each ToR one session with each hypervisor,
	// over IPv4, carrying IPv4 and IPv6 unicast (docs/tor: BIRD's template
	// virtbgp46, FRR's peer-group VIRTBGP46), instead of one session a
	// family; virtbgp's config has the two IPv4 peers with
	// families [ipv4, ipv6].
	OneSessionPerToR bool `json:"one_session_per_tor,omitempty"`
	// Log receives the lab's progress; nil discards it.
	Log *slog.Logger `json:"-"`
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("vb%d-%d-", os.Getpid(), labCount.Add(1))
	}
	if o.ToRASN == 0 {
		o.ToRASN = DefaultToRASN
	}
	if o.HostAASN == 0 {
		o.HostAASN = DefaultHostAASN
	}
	if o.HostBASN == 0 {
		o.HostBASN = DefaultHostBASN
	}
	if os.Getenv("VIRTBGP_LAB_TCG") != "" {
		o.TCG = true
	}
	if o.VirtbgpBinary == "" {
		o.VirtbgpBinary = os.Getenv("VIRTBGP_LAB_VIRTBGP")
	}
}

// Lab is a running lab. Its methods may be called from several goroutines.
type Lab struct {
	// Dir is the lab directory.
	Dir string
	// KVM is true when guests are KVM guests, false for TCG.
	KVM bool
	// TorNS is the name of the ToRs' network namespace.
	TorNS string
	// A and B are the two hypervisors.
	A, B *Host
	// BIRD and FRR are the two ToRs.
	BIRD *BIRD
	FRR  *FRR

	opts Options
	log  *slog.Logger

	saveMu  sync.Mutex // serializes writing the state file
	mu      sync.Mutex // guards the fields below
	procs   map[string]*process
	virtbgp map[string]VirtbgpConfig // by host name, for restarts
	ownDir  bool
	monitor int // counter of route monitors
}

// Host is one hypervisor of the lab.
type Host struct {
	// Name is "hvA" or "hvB"; NS the name of its network namespace.
	Name, NS string
	// IPv4 and IPv6 are its addresses on its link to the ToRs; IPv4 is
	// also its BGP router ID.
	IPv4, IPv6 netip.Addr
	// Link is the name of its link in the tor namespace (the ToR's port):
	// vA or vB. The host's end is eth0 in its namespace.
	Link string
	// tor is the ToRs' address on this host's link, by the name of the
	// address on host A's link (BIRDv4, BIRDv6, FRRv4, FRRv6).
	tor map[netip.Addr]netip.Addr
	// ASN is virtbgp's AS number on this host.
	ASN uint32
	// Dir is the host's directory in the lab directory.
	Dir string
	// URI is the libvirt URI of its libvirtd for clients in any namespace
	// (the unix socket); TCPURI the one other libvirtds reach it at
	// (peer-to-peer migration).
	URI, TCPURI string
	// UUID is its libvirt host_uuid (distinct per host: libvirt refuses to
	// migrate to a host with its own UUID).
	UUID string

	lab *Lab
}

// Hosts returns hvA and hvB.
func (l *Lab) Hosts() []*Host { return []*Host{l.A, l.B} }

// Host returns the host called name ("hvA" or "hvB"), or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.Hosts() {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// ToR returns the address on h's link of the ToR address a, one of BIRDv4,
// BIRDv6, FRRv4 and FRRv6 (their addresses on host A's link); any other
// address is returned as it is.
func (h *Host) ToR(a netip.Addr) netip.Addr {
	if b, ok := h.tor[a]; ok {
		return b
	}
	return a
}

// Other returns the other hypervisor.
func (l *Lab) Other(h *Host) *Host {
	if h == l.A {
		return l.B
	}
	return l.A
}

// Namespaces returns the names of the lab's network namespaces.
func (l *Lab) Namespaces() []string { return []string{l.TorNS, l.A.NS, l.B.NS} }

// Options returns the options the lab runs with, defaults filled in.
func (l *Lab) Options() Options { return l.opts }

const (
	stateFile  = "state.json"
	markerFile = ".virtbgp-lab"
)

// newLab lays out a lab from complete options; it starts nothing.
func newLab(opts Options, log *slog.Logger) *Lab {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Lab{
		Dir:     opts.Dir,
		TorNS:   opts.Prefix + "tor",
		opts:    opts,
		log:     log,
		procs:   map[string]*process{},
		virtbgp: map[string]VirtbgpConfig{},
	}
	mk := func(name string, v4, v6 netip.Addr, asn uint32, torOffset int) *Host {
		dir := filepath.Join(opts.Dir, name)
		tor := map[netip.Addr]netip.Addr{}
		for _, a := range []netip.Addr{BIRDv4, BIRDv6, FRRv4, FRRv6} {
			b := a
			for range torOffset {
				b = b.Next()
			}
			tor[a] = b
		}
		return &Host{
			Name: name, NS: opts.Prefix + name, IPv4: v4, IPv6: v6, ASN: asn, Dir: dir,
			Link: "v" + name[len(name)-1:], tor: tor,
			URI:    "qemu:///system?socket=" + filepath.Join(dir, "run", "libvirt-sock"),
			TCPURI: "qemu+tcp://" + v4.String() + "/system",
			lab:    l,
		}
	}
	l.A = mk("hvA", HostAv4, HostAv6, opts.HostAASN, 0)
	l.B = mk("hvB", HostBv4, HostBv6, opts.HostBASN, 2)
	torDir := filepath.Join(opts.Dir, "tor")
	l.BIRD = &BIRD{Socket: filepath.Join(torDir, "bird.ctl"), Log: filepath.Join(torDir, "bird.log"), lab: l}
	l.FRR = &FRR{Dir: filepath.Join(torDir, "frr"), lab: l}
	return l
}

// Up builds and starts a lab: namespaces and routed links, a libvirtd per
// hypervisor, BIRD and FRR, and builds virtbgp. It starts no virtbgp
// ([Host.StartVirtbgp] does) and no guest. On error everything started is
// taken down again.
func Up(ctx context.Context, opts Options) (l *Lab, err error) {
	t0 := time.Now()
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.setDefaults()
	if err := preflight(log); err != nil {
		return nil, err
	}
	cleanStale(ctx, log)
	for _, n := range []string{"tor", "hvA", "hvB"} {
		if _, err := os.Stat(filepath.Join("/run/netns", opts.Prefix+n)); err == nil {
			return nil, fmt.Errorf("network namespace %s exists already: another lab runs with prefix %q, or one was not taken down", opts.Prefix+n, opts.Prefix)
		}
	}

	ownDir := false
	if opts.Dir == "" {
		// Named after the prefix, so that cleanStale finds it.
		d, err := os.MkdirTemp("", "virtbgp-lab-"+opts.Prefix)
		if err != nil {
			return nil, fmt.Errorf("lab dir: %w", err)
		}
		opts.Dir, ownDir = d, true
	} else {
		abs, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("lab dir %s: %w", opts.Dir, err)
		}
		opts.Dir = abs
		if err := claimDir(abs); err != nil {
			return nil, err
		}
	}
	// FRR runs as user frr: it must reach its directory in the lab.
	if err := os.Chmod(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(opts.Dir, markerFile), []byte("virtbgp lab directory: removed by Down\n"), 0o644); err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}

	l = newLab(opts, log)
	l.ownDir = ownDir
	l.KVM = !opts.TCG && KVMUsable()
	for _, h := range l.Hosts() {
		h.UUID = newUUID()
	}
	defer func() {
		if err != nil {
			log.Warn("lab up failed; taking it down", "error", err)
			if derr := l.Down(context.WithoutCancel(ctx)); derr != nil {
				log.Warn("lab down after a failed up", "error", derr)
			}
			l = nil
		}
	}()
	if err := l.save(); err != nil {
		return l, err
	}
	log.Info("lab up", "dir", opts.Dir, "prefix", opts.Prefix, "kvm", l.KVM)

	// virtbgp builds while the network and the daemons come up; libvirtd
	// waits only for the (small) subreaper.
	builtVirtbgp := make(chan error, 1)
	go func() { builtVirtbgp <- l.buildVirtbgp(ctx) }()
	builtReaper := make(chan error, 1)
	go func() { builtReaper <- l.build(ctx, "./integration/cmd/vb-subreaper") }()

	if err := l.setupNetwork(ctx); err != nil {
		<-builtVirtbgp
		<-builtReaper
		return l, err
	}
	reaperErr := <-builtReaper
	var wg sync.WaitGroup
	errs := make([]error, 4)
	startFRR := l.FRR.start
	if opts.NoFRR {
		startFRR = func(context.Context) error { return nil }
	}
	for i, f := range []func(context.Context) error{l.BIRD.start, startFRR, l.A.startLibvirtd, l.B.startLibvirtd} {
		if i >= 2 && reaperErr != nil {
			errs[i] = reaperErr
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(ctx)
		}()
	}
	wg.Wait()
	errs = append(errs, <-builtVirtbgp)
	if err := errors.Join(errs...); err != nil {
		return l, err
	}
	saveCapsCache(l.A, log)
	log.Info("lab is up", "took", time.Since(t0).Round(time.Millisecond))
	return l, l.save()
}

// claimDir makes sure dir is missing, empty, or a lab directory that no lab
// uses any more.
func claimDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.MkdirAll(dir, 0o755)
	case err != nil:
		return fmt.Errorf("lab dir: %w", err)
	case len(ents) == 0:
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
		return fmt.Errorf("lab dir %s is not empty and not a lab directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		return fmt.Errorf("lab dir %s holds a lab that was not taken down (Load and Down it first)", dir)
	}
	if err := removeLabDir(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o755)
}

// removeLabDir removes a directory that carries the lab marker.
func removeLabDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove lab dir: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove lab dir: %w", err)
	}
	return nil
}

// Commands the lab runs, and the Debian packages they come from.
var needed = []struct{ cmd, pkg string }{
	{"ip", "iproute2"},
	{"unshare", "util-linux"},
	{"mount", "mount"},
	{"libvirtd", "libvirt-daemon"},
	{"virsh", "libvirt-clients"},
	{"qemu-system-x86_64", "qemu-system-x86"},
	{"bird", "bird2"},
	{"birdc", "bird2"},
	{"vtysh", "frr"},
	{"/usr/lib/frr/zebra", "frr"},
	{"/usr/lib/frr/bgpd", "frr"},
	{ExaBGPPath, "exabgp"}, // the benchmarks' reference speaker
	{"go", "the Go toolchain"},
}

// Packages lists the Debian packages the lab needs (scripts/deps.sh installs
// them; the Makefile's LAB_PKGS names the same).
var Packages = []string{"iproute2", "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients", "qemu-system-x86", "bird2", "frr", "exabgp"}

func preflight(log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces, mounts, libvirtd)")
	}
	var missing []string
	for _, n := range needed {
		if _, err := exec.LookPath(n.cmd); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", n.cmd, n.pkg))
		}
	}
	if _, err := os.Stat(qemuDriver()); err != nil {
		missing = append(missing, "the libvirt QEMU driver (libvirt-daemon-driver-qemu)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the lab needs %s: run scripts/deps.sh %s", strings.Join(missing, ", "), strings.Join(Packages, " "))
	}
	// libvirt's QEMU driver looks the libvirt-qemu user up when it loads,
	// before it reads qemu.conf (which makes QEMU run as root). Only
	// libvirt-daemon-system creates it.
	if _, err := run(context.Background(), "getent", "passwd", "libvirt-qemu"); err != nil {
		if _, err := run(context.Background(), "useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", "libvirt-qemu"); err != nil {
			return fmt.Errorf("create the libvirt-qemu user that libvirt's QEMU driver wants: %w", err)
		}
		log.Info("created the system user libvirt-qemu (libvirt's QEMU driver wants it)")
	}
	if bgpListening() {
		// A system BIRD or FRR, say. It cannot clash: the lab's routers
		// listen in the tor namespace only.
		log.Info("something listens on TCP port 179 in the root namespace; the lab's routers do not use it")
	}
	return nil
}

// bgpListening reports whether a socket listens on TCP port 179 in this
// network namespace.
func bgpListening() bool {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// "  0: 00000000:00B3 00000000:0000 0A ..." (local address, remote, state)
			fs := strings.Fields(line)
			if len(fs) > 3 && strings.HasSuffix(fs[1], ":00B3") && fs[3] == "0A" {
				return true
			}
		}
	}
	return false
}

// KVMUsable reports whether /dev/kvm opens and answers KVM_GET_API_VERSION:
// whether guests can be KVM guests rather than TCG.
func KVMUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	const kvmGetAPIVersion = 0xAE00
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	return errno == 0 && v == 12
}

// setupNetwork creates the namespaces and a routed link from each
// hypervisor to tor: a veth whose tor end (Host.Link) carries the ToRs'
// addresses for that host as point-to-point addresses with the host as
// peer, so that the host's link going down is the ToRs' interface going
// down. The host's end (eth0) has a /24 and a /64 on it: tor answers for
// the other host's addresses (proxy ARP and NDP) and routes between the
// two, so the libvirtds reach each other for migrations. IPv6 addresses go
// without duplicate address detection, so they are usable at once.
func (l *Lab) setupNetwork(ctx context.Context) error {
	for _, ns := range l.Namespaces() {
		if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return fmt.Errorf("create namespace: %w", err)
		}
		// Saved after each, so that Down deletes what exists.
		if err := l.save(); err != nil {
			return err
		}
	}
	sysctls := []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.proxy_ndp=1"}
	tor := []string{"link set lo up"}
	for _, h := range l.Hosts() {
		o := l.Other(h)
		tor = append(tor, fmt.Sprintf("link add %s type veth peer name eth0 netns %s", h.Link, h.NS))
		for _, a := range []netip.Addr{BIRDv4, FRRv4} {
			tor = append(tor, fmt.Sprintf("addr add %s/32 peer %s/32 dev %s", h.ToR(a), h.IPv4, h.Link))
		}
		for _, a := range []netip.Addr{BIRDv6, FRRv6} {
			tor = append(tor, fmt.Sprintf("addr add %s/128 peer %s/128 dev %s nodad", h.ToR(a), h.IPv6, h.Link))
		}
		tor = append(tor,
			fmt.Sprintf("link set %s up", h.Link),
			fmt.Sprintf("route replace %s/128 dev %s", h.IPv6, h.Link),
			fmt.Sprintf("neigh add proxy %s dev %s", o.IPv6, h.Link))
		sysctls = append(sysctls, fmt.Sprintf("net.ipv4.conf.%s.proxy_arp=1", h.Link),
			fmt.Sprintf("net.ipv4.conf.%s.rp_filter=0", h.Link))
	}
	if err := ipBatch(ctx, l.TorNS, tor); err != nil {
		return err
	}
	if _, err := run(ctx, append([]string{"ip", "netns", "exec", l.TorNS, "sysctl", "-q", "-w"}, sysctls...)...); err != nil {
		return fmt.Errorf("configure namespace %s: %w", l.TorNS, err)
	}
	for _, h := range l.Hosts() {
		// The host's IPv6 addresses survive its link going down and up
		// (Host.Fail, Host.Recover), as an IPv4 address does.
		if _, err := run(ctx, "ip", "netns", "exec", h.NS, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1"); err != nil {
			return fmt.Errorf("configure namespace %s: %w", h.NS, err)
		}
		if err := ipBatch(ctx, h.NS, []string{
			"link set lo up",
			fmt.Sprintf("addr add %s/24 dev eth0", h.IPv4),
			fmt.Sprintf("addr add %s/64 dev eth0 nodad", h.IPv6),
			"link set eth0 up",
		}); err != nil {
			return err
		}
	}
	return nil
}

// ipBatch runs ip commands in namespace ns in one ip -batch.
func ipBatch(ctx context.Context, ns string, cmds []string) error {
	cmd := exec.CommandContext(ctx, "ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("configure namespace %s: %w", ns, &CommandError{Args: cmd.Args, Err: err, Stderr: string(out)})
	}
	return nil
}

// buildVirtbgp builds virtbgp into the lab's bin directory, or links the
// prebuilt binary of Options.VirtbgpBinary there.
func (l *Lab) buildVirtbgp(ctx context.Context) error {
	if l.opts.NoVirtbgp {
		return nil
	}
	if l.opts.VirtbgpBinary == "" {
		return l.build(ctx, "./cmd/virtbgp")
	}
	src, err := filepath.Abs(l.opts.VirtbgpBinary)
	if err != nil {
		return fmt.Errorf("virtbgp binary: %w", err)
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("virtbgp binary: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(l.Dir, "bin"), 0o755); err != nil {
		return fmt.Errorf("virtbgp binary: %w", err)
	}
	if err := os.Symlink(src, l.VirtbgpBinary()); err != nil {
		return fmt.Errorf("virtbgp binary: %w", err)
	}
	return nil
}

// build builds a package of the module into the lab's bin directory.
func (l *Lab) build(ctx context.Context, pkg string) error {
	root, err := l.sourceRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(l.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w", pkg, &CommandError{Args: cmd.Args, Err: err, Stderr: string(out)})
	}
	l.log.Info("built", "pkg", pkg, "dir", bin, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// sourceRoot returns the root of the virtbgp module: Options.SourceRoot,
// or found upwards from the working directory.
func (l *Lab) sourceRoot() (string, error) {
	if l.opts.SourceRoot != "" {
		return filepath.Abs(l.opts.SourceRoot)
	}
	return findModuleRoot()
}

// VirtbgpBinary is the path of the virtbgp binary the lab built.
func (l *Lab) VirtbgpBinary() string { return filepath.Join(l.Dir, "bin", "virtbgp") }

func (l *Lab) subreaper() string { return filepath.Join(l.Dir, "bin", "vb-subreaper") }

const modulePath = "github.com/virtbgp/virtbgp"

// findModuleRoot finds the virtbgp module upwards from the working
// directory.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the virtbgp module: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && regexp.MustCompile(`(?m)^module\s+`+regexp.QuoteMeta(modulePath)+`\s*$`).Match(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find the virtbgp module: no go.mod of %s above the working directory (set Options.SourceRoot)", modulePath)
		}
		dir = parent
	}
}

// state is what the state file keeps: enough to take the lab down, or to
// drive it, from another process.
type state struct {
	Options   Options                  `json:"options"`
	OwnDir    bool                     `json:"own_dir"`
	KVM       bool                     `json:"kvm"`
	UUIDs     map[string]string        `json:"host_uuids"`
	Processes []*process               `json:"processes"`
	Virtbgp   map[string]VirtbgpConfig `json:"virtbgp"`
}

// save writes the state file (atomically).
func (l *Lab) save() error {
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	l.mu.Lock()
	st := state{Options: l.opts, OwnDir: l.ownDir, KVM: l.KVM, Virtbgp: l.virtbgp,
		UUIDs: map[string]string{l.A.Name: l.A.UUID, l.B.Name: l.B.UUID}}
	for _, p := range l.procs {
		st.Processes = append(st.Processes, p)
	}
	slices.SortFunc(st.Processes, func(a, b *process) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(st, "", "  ") // under l.mu: it reads the maps and the processes
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("save lab state: %w", err)
	}
	tmp := filepath.Join(l.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save lab state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(l.Dir, stateFile)); err != nil {
		return fmt.Errorf("save lab state: %w", err)
	}
	return nil
}

// Load returns the lab whose state file is in dir, as another process
// brought it up, to drive it or take it down. log may be nil.
func Load(dir string, log *slog.Logger) (*Lab, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load lab: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(abs, stateFile))
	if err != nil {
		return nil, fmt.Errorf("load lab: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("load lab %s: %w", filepath.Join(abs, stateFile), err)
	}
	st.Options.Dir = abs
	l := newLab(st.Options, log)
	l.ownDir, l.KVM = st.OwnDir, st.KVM
	l.A.UUID, l.B.UUID = st.UUIDs[l.A.Name], st.UUIDs[l.B.Name]
	for _, p := range st.Processes {
		l.procs[p.Name] = p
	}
	if st.Virtbgp != nil {
		l.virtbgp = st.Virtbgp
	}
	return l, nil
}

// track records a started process (and saves the state).
func (l *Lab) track(p *process) error {
	l.mu.Lock()
	l.procs[p.Name] = p
	l.mu.Unlock()
	return l.save()
}

// proc returns the tracked process called name, or nil.
func (l *Lab) proc(name string) *process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.procs[name]
}

// ProcessInfo describes one process the lab started.
type ProcessInfo struct {
	Name  string
	PID   int
	Alive bool
	Log   string
}

// Processes lists the processes the lab started (and whether each still
// runs), sorted by name.
func (l *Lab) Processes() []ProcessInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ProcessInfo
	for _, p := range l.procs {
		out = append(out, ProcessInfo{Name: p.Name, PID: p.PID, Alive: p.alive(), Log: p.Log})
	}
	slices.SortFunc(out, func(a, b ProcessInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Down takes the lab down: virtbgp, guests, libvirtd, the ToRs, anything
// else left in its namespaces (each process ended by PID), the namespaces,
// and the lab directory. It is idempotent, and it carries on past errors,
// which it returns joined.
func (l *Lab) Down(ctx context.Context) error {
	if l == nil {
		return nil
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
	)
	addErr := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	parallel := func(fs ...func()) {
		var wg sync.WaitGroup
		for _, f := range fs {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		wg.Wait()
	}
	stop := func(name string, grace time.Duration) func() {
		return func() {
			if p := l.proc(name); p != nil {
				addErr(p.stop(ctx, syscall.SIGTERM, grace))
			}
		}
	}

	// 1. virtbgp first, so that it does not log the rest going away.
	parallel(stop(virtbgpProc(l.A), 3*time.Second), stop(virtbgpProc(l.B), 3*time.Second))
	// 2. The guests, while their libvirtd still runs.
	parallel(func() { l.A.destroyAll(ctx) }, func() { l.B.destroyAll(ctx) })
	// 3. Every other process the lab started.
	l.mu.Lock()
	var rest []func()
	for name := range l.procs {
		rest = append(rest, stop(name, 5*time.Second))
	}
	l.mu.Unlock()
	parallel(rest...)
	frrPIDs := l.FRR.pids()
	// 4. Whatever is left in the namespaces (QEMU, helpers), by PID.
	for _, ns := range l.Namespaces() {
		addErr(killNamespace(ctx, ns, l.log))
	}
	// 5. The namespaces; with their last process, the private mounts of
	// each libvirtd went away.
	for _, ns := range l.Namespaces() {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		if _, err := run(ctx, "ip", "netns", "delete", ns); err != nil {
			addErr(fmt.Errorf("delete namespace: %w", err))
		}
	}
	removeFRRTmp(frrPIDs)
	// 6. The directory (or only the state file, if something failed, so
	// that a second Down can finish the job).
	mu.Lock()
	failed := len(errs) > 0
	mu.Unlock()
	if !failed {
		addErr(removeLabDir(l.Dir))
	}
	l.log.Info("lab down", "took", time.Since(t0).Round(time.Millisecond), "errors", len(errs))
	if len(errs) > 0 {
		return fmt.Errorf("lab down: %w", errors.Join(errs...))
	}
	return nil
}

// killNamespace SIGKILLs every process left in network namespace ns and
// waits until they are gone.
func killNamespace(ctx context.Context, ns string, log *slog.Logger) error {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
		return nil
	}
	var killed []*process
	out, err := run(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		return fmt.Errorf("list processes in namespace %s: %w", ns, err)
	}
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == os.Getpid() {
			continue
		}
		_, start, err := procStat(pid)
		if err != nil {
			continue
		}
		p := &process{Name: "leftover in " + ns, PID: pid, Start: start}
		if !p.alive() {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		p.Name = strings.TrimSpace(string(comm))
		log.Info("killing a leftover process", "ns", ns, "pid", pid, "comm", p.Name)
		if err := p.signal(syscall.SIGKILL); err == nil {
			killed = append(killed, p)
		}
	}
	var errs []error
	for _, p := range killed {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		errs = append(errs, p.wait(wctx))
		cancel()
		if p.Name == "zebra" || p.Name == "bgpd" {
			// FRR leaves its crash-log directory behind when killed.
			removeFRRTmp(map[string]int{p.Name: p.PID})
		}
	}
	return errors.Join(errs...)
}

var (
	staleNS  = regexp.MustCompile(`^vb([0-9]+)-(?:[0-9]+-)?(tor|hvA|hvB)$`)
	labCount atomic.Int64
)

// cleanStale removes the namespaces (and their processes) and temporary
// directories of labs with the default prefix whose process has died
// without taking its lab down.
func cleanStale(ctx context.Context, log *slog.Logger) {
	ents, _ := os.ReadDir("/run/netns")
	dead := map[string]bool{}
	defer func() {
		for pid := range dead {
			dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "virtbgp-lab-vb"+pid+"-*"))
			for _, d := range dirs {
				log.Warn("removing a stale lab directory of a dead process", "dir", d)
				_ = removeLabDir(d)
			}
		}
	}()
	for _, e := range ents {
		m := staleNS.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue // its lab process still runs
		}
		dead[m[1]] = true
		log.Warn("removing a stale lab namespace of a dead process", "ns", e.Name(), "pid", pid)
		if err := killNamespace(ctx, e.Name(), log); err != nil {
			log.Warn("stale namespace", "ns", e.Name(), "error", err)
		}
		if _, err := run(ctx, "ip", "netns", "delete", e.Name()); err != nil {
			log.Warn("stale namespace", "ns", e.Name(), "error", err)
		}
	}
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
