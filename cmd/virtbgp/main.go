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
//	virtbgp version                 print the version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/daemon"
	"github.com/virtbgp/virtbgp/internal/notify"
	"github.com/virtbgp/virtbgp/mapping"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const defaultConfig = "/etc/virtbgp/virtbgp.yaml"

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: virtbgp <command> [flags]

commands:
  run     --config FILE   run the daemon (default config %s)
  check   --config FILE   validate the config and the mapping; print every error; exit 1 on any
  check   --mapping PATH  validate a mapping file or directory alone
  check   --domain-xml F  validate the virtbgp and Nova metadata of a domain XML file (or of a
                          bare element), optionally against --allowed-prefixes; for orchestrator CI
  metadata show|set|clear --domain NAME [--live] [--config]
                          a domain's virtbgp metadata through libvirt (virtbgp metadata help)
  status  [--json]        show the running daemon: peers, domains, announced routes, drain, mapping
  drain                   drain this host: routes carry GRACEFUL_SHUTDOWN, then are withdrawn
  undrain                 undo a drain: announce the routes normally again
  reload                  reload the mapping and the config (as SIGHUP does)
  version                 print the version

status, drain, undrain and reload talk to the daemon over its control socket
(--socket PATH, default %s; root only); exit 1 if it fails or is unreachable.
`, defaultConfig, control.DefaultSocket)
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "metadata":
		return cmdMetadata(args, stdout, stderr)
	case "status":
		return cmdStatus(args, stdout, stderr)
	case control.OpDrain, control.OpUndrain, control.OpReload:
		return cmdControl(cmd, args, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "virtbgp: unknown command %q\n", cmd)
	usage(stderr)
	return 2
}

func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v = "devel-" + s.Value[:12]
				}
			}
		}
	}
	return fmt.Sprintf("virtbgp %s (%s %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
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
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfig, "daemon config `file`")
	mapPath := fs.String("mapping", "", "check this mapping `path` instead of the config's mapping.path (config not needed)")
	domainXML := domainXMLFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "virtbgp check: unexpected argument %q\n", fs.Arg(0))
		return 2
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
		fmt.Fprintln(stderr, "virtbgp check: --allowed-prefixes and its companions need --domain-xml")
		return 2
	}
	return checkMapping(*cfgPath, *mapPath, stdout, stderr)
}

// checkMapping checks the config at cfgPath and the mapping it names, or
// the mapping at mapPath alone.
func checkMapping(cfgPath, mapPath string, stdout, stderr io.Writer) int {
	path := mapPath
	limits := mapping.DefaultLimits // --mapping alone: the default limits
	if path == "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			printErrors(stderr, "config "+cfgPath, err)
			return 1
		}
		fmt.Fprintf(stdout, "config %s: ok (AS %d, router-id %s, %d peer(s), libvirt %s)\n",
			cfgPath, cfg.BGP.ASN, cfg.BGP.RouterID, len(cfg.BGP.Peers), cfg.Libvirt.URI)
		printWarnings(stdout, cfg)
		limits = cfg.Routes
		if md := cfg.Mapping.Metadata; md.Enabled {
			fmt.Fprintf(stdout, "metadata: virtbgp's element, claims allowed in %v\n", md.Allow.Prefixes)
		}
		if n := cfg.Mapping.Nova; n.Enabled {
			fmt.Fprintf(stdout, "metadata: Nova's element, %v IPs, claims allowed in %v\n", n.Options.Types, n.Allow.Prefixes)
		}
		path = cfg.Mapping.Path
		if path == "" {
			fmt.Fprintf(stdout, "mapping: none (the routes come from the domains' metadata)\n")
			return 0
		}
	}
	m, err := loadMapping(path, limits)
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
func loadMapping(path string, limits mapping.Limits) (*mapping.Mapping, error) {
	m, err := mapping.Load(path)
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

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfig, "daemon config `file`")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintf(stderr, "virtbgp: %v\n", err)
		return 2
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
	for _, w := range daemon.UnsafeDirs(cfg) {
		log.Warn("config warning", "problem", w)
	}
	var m *mapping.Mapping // none without a file: metadata only
	if cfg.Mapping.Path != "" {
		if m, err = loadMapping(cfg.Mapping.Path, cfg.Routes); err != nil {
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
	d, err := daemon.New(cfg, m, log, daemon.Options{Version: strings.TrimPrefix(versionString(), "virtbgp "), Notifier: notify.New(log.With("part", "systemd"))})
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
