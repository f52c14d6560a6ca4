// Command virtbgp announces the service IPs of the VMs running on this KVM
// hypervisor as BGP host routes, and withdraws them when a VM stops, pauses
// or migrates away.
//
//	virtbgp run     --config FILE   run the daemon
//	virtbgp check   --config FILE   validate config and mapping, print every error
//	virtbgp check   --domain-xml F  validate a domain XML's virtbgp and Nova metadata
//	virtbgp metadata show|set|clear  a domain's virtbgp metadata, through libvirt
//	virtbgp status  [--json]        show the running daemon's peers, domains and routes
//	virtbgp drain                   drain this host (GRACEFUL_SHUTDOWN, then withdraw)
//	virtbgp undrain                 undo a drain
//	virtbgp reload                  reload the mapping and config
//	virtbgp announce PREFIX [...]   announce a manual route (--med, --community, --ttl, --note, ...)
//	virtbgp withdraw PREFIX         withdraw a manual route
//	virtbgp routes  [--json]        list the manual routes
//	virtbgp maintenance on|off|list  a domain, or one of its routes, out of service
//	virtbgp version                 print the version, commit and Go version
//	virtbgp help [COMMAND]          the commands, or one command's synopsis and flags
//
// Every command takes --help. The man page virtbgp(8) says the same at
// length.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/daemon"
	"github.com/virtbgp/virtbgp/internal/notify"
	"github.com/virtbgp/virtbgp/mapping"
)

const defaultConfig = "/etc/virtbgp/virtbgp.yaml"

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return cmdHelp(args[1:], stdout, stderr)
	case "--version", "-version":
		return cmdVersion(args[1:], stdout, stderr)
	}
	c, rest := findCommand(args)
	if c != nil {
		return c.run(rest, stdout, stderr)
	}
	// A group ("metadata") without one of its commands.
	if cs := group(args[0]); len(cs) > 0 {
		if len(args) > 1 && (args[1] == "-h" || args[1] == "-help" || args[1] == "--help" || args[1] == "help") {
			writeUsage(stdout, cs)
			return 0
		}
		if len(args) > 1 {
			fmt.Fprintf(stderr, "virtbgp %s: unknown command %q\n", args[0], args[1])
		}
		writeUsage(stderr, cs)
		return 2
	}
	fmt.Fprintf(stderr, "virtbgp: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// printErrors writes each problem of err on its own line.
func printErrors(w io.Writer, what string, err error) {
	if list := fileerr.Errors(err); len(list) > 0 {
		for _, e := range list {
			fmt.Fprintln(w, e.Error())
		}
		fmt.Fprintf(w, "%s: %d problem(s)\n", what, len(list))
		return
	}
	fmt.Fprintf(w, "%s: %v\n", what, err)
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", stdout, stderr)
	cfgPath := fs.String("config", defaultConfig, "daemon config `file`")
	mapPath := fs.String("mapping", "", "check this mapping `path` instead of the config's mapping.path (config not needed)")
	domainXML := domainXMLFlags(fs)
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if code, ok := noArgs(fs); !ok {
		return code
	}
	if len(domainXML.files) > 0 {
		// Domain XML alone, unless --config or --mapping asks for more.
		more := false
		fs.Visit(func(f *flag.Flag) { more = more || f.Name == "config" || f.Name == "mapping" })
		code := 0
		if !domainXML.run(stdout, stderr) {
			code = 1
		}
		if more && checkMapping(*cfgPath, *mapPath, stdout, stderr) != 0 {
			code = 1
		}
		return code
	}
	if domainXML.allow != nil {
		return usageError(fs, "--allowed-prefixes and its companions need --domain-xml")
	}
	return checkMapping(*cfgPath, *mapPath, stdout, stderr)
}

// checkMapping checks the config at cfgPath and the mapping it names, or
// the mapping at mapPath alone.
func checkMapping(cfgPath, mapPath string, stdout, stderr io.Writer) int {
	path, limit := mapPath, int64(mapping.DefaultMaxBytes)
	limits := mapping.DefaultLimits // --mapping alone: the default limits
	if path == "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			printErrors(stderr, "config "+cfgPath, err)
			return 1
		}
		fmt.Fprintf(stdout, "config %s: ok (AS %d, router-id %s, %d peer(s), libvirt %s)\n",
			cfgPath, cfg.BGP.ASN, cfg.BGP.RouterID, len(cfg.BGP.Peers), cfg.Libvirt.URI)
		printWarnings(stderr, cfg)
		limits = cfg.Routes
		checkNextHops(cfg.BGP, bgp.KernelNextHop, bgp.KernelLinkLocalNeighbor, stdout, stderr)
		if md := cfg.Mapping.Metadata; md.Enabled {
			fmt.Fprintf(stdout, "metadata: virtbgp's element, claims allowed in %v\n", md.Allow.Prefixes)
		}
		if n := cfg.Mapping.Nova; n.Enabled {
			fmt.Fprintf(stdout, "metadata: Nova's element, %v IPs, claims allowed in %v\n", n.Options.Types, n.Allow.Prefixes)
		}
		path, limit = cfg.Mapping.Path, cfg.Mapping.MaxBytes
		if path == "" {
			fmt.Fprintf(stdout, "mapping: none (the routes come from the domains' metadata)\n")
			return 0
		}
	}
	m, err := loadMapping(path, limit, limits)
	if err != nil {
		printErrors(stderr, "mapping "+path, err)
		return 1
	}
	vms, routes := m.Stats()
	fmt.Fprintf(stdout, "mapping %s: ok (%d VM(s), %d route(s) from %d file(s))\n", path, vms, routes, len(m.Sources()))
	return 0
}

// loadMapping loads the mapping at path and checks it against the
// config's limits on routes.
func loadMapping(path string, maxBytes int64, limits mapping.Limits) (*mapping.Mapping, error) {
	m, err := mapping.LoadMax(path, maxBytes)
	if err != nil {
		return nil, err
	}
	if err := m.CheckLimits(limits); err != nil {
		return nil, err
	}
	return m, nil
}

// printWarnings prints what the config has that is valid but probably
// wrong or unsafe: what `virtbgp run` logs at WARN.
func printWarnings(w io.Writer, cfg *config.Config) {
	for _, e := range cfg.Warnings {
		fmt.Fprintf(w, "warning: %s\n", e.Error())
	}
	for _, p := range daemon.UnsafeDirs(cfg) {
		fmt.Fprintf(w, "warning: %s\n", p)
	}
}

// checkNextHops prints, for each peer whose session carries the family
// other than its own, the next hop of that family its routes get on this
// host, or a warning that they are not sent to it; and for each unnumbered
// peer the neighbour nb finds on its interface, or a warning that there is
// none yet. They are warnings, not errors: the config may be checked away
// from the host that runs it.
func checkNextHops(b config.BGP, nh bgp.NextHopFunc, nb bgp.NeighborFunc, stdout, stderr io.Writer) {
	used, dropped := bgp.PlanNextHops(b, nh)
	for _, p := range b.Peers {
		if p.Interface != "" {
			if a, err := nb(p.Interface); err != nil {
				fmt.Fprintf(stderr, "warning: peer interface %s: no session on this host until there is one neighbour: %v\n", p.Interface, err)
			} else {
				fmt.Fprintf(stdout, "peer interface %s: unnumbered, neighbour %s; its routes get this host's link-local address on %s as next hop (IPv4 ones too, RFC 8950)\n", p.Interface, a, p.Interface)
			}
			continue
		}
		a := p.Address.Unmap()
		for _, f := range []config.Family{config.FamilyIPv4, config.FamilyIPv6} {
			if addr, ok := used[a][f]; ok {
				fmt.Fprintf(stdout, "peer %s: %s routes with next hop self get next hop %s\n", a, f, addr)
			}
		}
	}
	for _, d := range dropped {
		fmt.Fprintf(stderr, "warning: peer %s: its session carries %s but %s routes with next hop self will not be sent to it on this host: %s (set next-hop-%s, or give the interface facing it a global %s address)\n",
			d.Peer, d.Family, d.Family, d.Reason, d.Family, d.Family)
	}
}

// newLogger returns the daemon's logger writing to w. With journal (w is
// the stream systemd connects to the journal), each line starts with its
// syslog priority, so that journalctl -p warning shows warnings and errors,
// and the text format leaves out the time, which the journal records.
func newLogger(w io.Writer, level, format string, journal bool) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var newHandler func(io.Writer) slog.Handler
	switch format {
	case "text":
		if journal {
			opts.ReplaceAttr = dropTime
		}
		newHandler = func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, opts) }
	case "json":
		newHandler = func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, opts) }
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	if journal {
		return slog.New(newJournalHandler(w, newHandler)), nil
	}
	return slog.New(newHandler(w)), nil
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stdout, stderr)
	cfgPath := fs.String("config", defaultConfig, "daemon config `file`")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	format := fs.String("log-format", "text", "log `format`: text or json")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if code, ok := noArgs(fs); !ok {
		return code
	}
	f, _ := stderr.(*os.File)
	log, err := newLogger(stderr, *level, *format, stderrIsJournal(f, os.Getenv("JOURNAL_STREAM")))
	if err != nil {
		return usageError(fs, "%v", err)
	}
	// A CPU profile of the whole run, for benchmarks (go tool pprof).
	if path := os.Getenv("VIRTBGP_CPUPROFILE"); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			fmt.Fprintf(stderr, "virtbgp: %v\n", err)
			return 1
		}
		defer stopProfile()
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		printErrors(stderr, "config "+*cfgPath, err)
		return 1
	}
	for _, w := range cfg.Warnings {
		log.Warn("config warning", "problem", w.Error())
	}
	var m *mapping.Mapping // none without a file: metadata only
	if cfg.Mapping.Path != "" {
		if m, err = loadMapping(cfg.Mapping.Path, cfg.Mapping.MaxBytes, cfg.Routes); err != nil {
			printErrors(stderr, "mapping "+cfg.Mapping.Path, err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	vms, routes := m.Stats()
	log.Info("starting", "version", versionString(), "config", cfg.File, "asn", cfg.BGP.ASN,
		"router_id", cfg.BGP.RouterID, "peers", len(cfg.BGP.Peers), "libvirt", cfg.Libvirt.URI,
		"mapping", cfg.Mapping.Path, "vms", vms, "routes", routes)
	d, err := daemon.New(cfg, m, log, daemon.Options{Version: currentBuild().Version, Revision: currentBuild().Commit, Notifier: notify.New(log.With("part", "systemd"))})
	if err != nil {
		log.Error("virtbgp cannot start", "error", err)
		return 1
	}
	go func() {
		for range hup {
			log.Info("reloading the config and the mapping", "reason", "SIGHUP", "config", cfg.File)
			_ = d.Reload(ctx) // errors are logged by the daemon
		}
	}()
	if err := d.Run(ctx); err != nil {
		log.Error("virtbgp stopped", "error", err)
		return 1
	}
	return 0
}

// startCPUProfile writes a CPU profile to path until the returned function
// is called.
func startCPUProfile(path string) (stop func(), err error) {
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
