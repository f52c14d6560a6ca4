// Command virtbgp-lab brings virtbgp's real-world lab up for a person, and
// takes it down again: two hypervisors with their own libvirtd and virtbgp,
// and BIRD and FRR as top-of-rack routers, in network namespaces (see
// package integration/lab).
//
//	virtbgp-lab up     [--dir .lab] [--prefix vblab-] [--mapping FILE] [--tcg]
//	virtbgp-lab status [--dir .lab]
//	virtbgp-lab down   [--dir .lab]
//
// up starts virtbgp on both hosts with a mapping for a guest named demo
// (or the given mapping) and prints how to start, migrate and destroy a
// guest and how to look at both routers. The lab keeps running after up
// exits; down ends every process of it by PID, deletes its namespaces and
// removes the directory. make lab and make lab-down run these.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/virtbgp/virtbgp/integration/lab"
)

// demoMapping maps the guest "demo" the instructions start.
const demoMapping = `# Mapping of the lab's demo guest (see README.md for every key).
# Edit, then reload both hosts: kill -HUP <pid of each virtbgp>.
version: 1
defaults:
  communities: ["65001:100"]
  large-communities: ["65001:1:2"]
  med: 10
vms:
  demo:
    ips:
      - 192.0.2.100
      - 2001:db8::100
      - prefix: 192.0.2.101
        med: 50
        communities: [no-export]
`

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "up":
		err = up(ctx, args, log)
	case "down":
		err = down(ctx, args, log)
	case "status":
		err = status(ctx, args, log)
	case "-h", "--help", "help":
		usage(os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "virtbgp-lab: unknown command %q\n", cmd)
		usage(os.Stderr)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "virtbgp-lab: %v\n", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  virtbgp-lab up     [--dir .lab] [--prefix vblab-] [--mapping FILE] [--tcg]
  virtbgp-lab status [--dir .lab]
  virtbgp-lab down   [--dir .lab]
`)
}

func up(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dir := fs.String("dir", ".lab", "lab `directory` (state, configs, logs)")
	prefix := fs.String("prefix", "vblab-", "`prefix` of the namespace names")
	mapping := fs.String("mapping", "", "mapping `file` for both virtbgps (default: one for the guest demo, written to DIR/mapping.yaml)")
	tcg := fs.Bool("tcg", false, "TCG guests even when KVM works")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if l, err := lab.Load(abs, log); err == nil {
		if healthy(l) {
			fmt.Printf("The lab in %s is already up.\n\n", abs)
			return instructions(os.Stdout, l)
		}
		log.Warn("a lab in this directory is partly down; taking it down first", "dir", abs)
		if err := l.Down(ctx); err != nil {
			return err
		}
	}
	t0 := time.Now()
	l, err := lab.Up(ctx, lab.Options{Dir: abs, Prefix: *prefix, TCG: *tcg, Log: log})
	if err != nil {
		return err
	}
	fail := func(err error) error {
		if derr := l.Down(context.WithoutCancel(ctx)); derr != nil {
			log.Warn("take the lab down", "error", derr)
		}
		return err
	}
	mp := *mapping
	if mp == "" {
		mp = filepath.Join(l.Dir, "mapping.yaml")
		if err := os.WriteFile(mp, []byte(demoMapping), 0o644); err != nil {
			return fail(err)
		}
	}
	if _, err := l.WriteGuestXML(lab.Guest{Name: "demo"}); err != nil {
		return fail(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := l.StartVirtbgpAll(wctx, lab.VirtbgpConfig{Mapping: mp, LogLevel: "debug"}); err != nil {
		return fail(err)
	}
	fmt.Printf("The lab is up in %s (%s guests) after %s.\n\n", l.Dir, guestKind(l), time.Since(t0).Round(100*time.Millisecond))
	return instructions(os.Stdout, l)
}

func guestKind(l *lab.Lab) string {
	if l.KVM {
		return "KVM"
	}
	return "TCG"
}

// healthy reports whether every process a lab should have runs.
func healthy(l *lab.Lab) bool {
	alive := map[string]bool{}
	for _, p := range l.Processes() {
		alive[p.Name] = p.Alive
	}
	for _, n := range []string{"bird", "frr-zebra", "frr-bgpd", "libvirtd-hvA", "libvirtd-hvB", "virtbgp-hvA", "virtbgp-hvB"} {
		if !alive[n] {
			return false
		}
	}
	return true
}

// loadLab parses the command's --dir and opens the lab there; l is nil,
// with a message printed, when there is none.
func loadLab(cmd string, args []string, log *slog.Logger) (*lab.Lab, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	dir := fs.String("dir", ".lab", "lab `directory`")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	l, err := lab.Load(*dir, log)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Printf("No lab in %s.\n", *dir)
		return nil, nil
	}
	return l, err
}

func down(ctx context.Context, args []string, log *slog.Logger) error {
	l, err := loadLab("down", args, log)
	if l == nil || err != nil {
		return err
	}
	if err := l.Down(ctx); err != nil {
		return err
	}
	fmt.Printf("The lab in %s is down: namespaces %s deleted, every process of it ended.\n", l.Dir, strings.Join(l.Namespaces(), ", "))
	return nil
}

func status(ctx context.Context, args []string, log *slog.Logger) error {
	l, err := loadLab("status", args, log)
	if l == nil || err != nil {
		return err
	}
	fmt.Printf("Lab in %s, namespaces %s, %s guests.\n\nProcesses:\n", l.Dir, strings.Join(l.Namespaces(), ", "), guestKind(l))
	for _, p := range l.Processes() {
		state := "running"
		if !p.Alive {
			state = "gone"
		}
		fmt.Printf("  %-14s pid %-8d %-8s %s\n", p.Name, p.PID, state, p.Log)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fmt.Println("\nGuests:")
	for _, h := range l.Hosts() {
		names, err := h.Guests(ctx, true)
		if err != nil {
			fmt.Printf("  %s: %v\n", h.Name, err)
			continue
		}
		for _, n := range names {
			st, _ := h.GuestState(ctx, n)
			fmt.Printf("  %s: %s %s\n", h.Name, n, st)
		}
	}
	for _, r := range l.Routers() {
		fmt.Printf("\n%s sessions:\n", r.Name())
		ss, err := r.Sessions(ctx)
		if err != nil {
			fmt.Printf("  %v\n", err)
		}
		for _, s := range ss {
			fmt.Printf("  %-6s %-18s %s\n", s.Name, s.Peer, s.State)
		}
		fmt.Printf("%s routes:\n", r.Name())
		rib, err := r.Routes(ctx)
		if err != nil {
			fmt.Printf("  %v\n", err)
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(rib.String()), "\n") {
			if line != "" {
				fmt.Printf("  %s\n", line)
			}
		}
	}
	return nil
}

var help = template.Must(template.New("help").Parse(`Both hypervisors run virtbgp (logs: {{.A.VirtbgpLogPath}}, {{.B.VirtbgpLogPath}})
with the mapping {{.Mapping}}, which maps the guest "demo" to
192.0.2.100, 192.0.2.101 and 2001:db8::100.

  A='{{.A.URI}}'
  B='{{.B.URI}}'

Start the guest demo on hvA, look, migrate it to hvB, and back, destroy it:

  virsh -c "$A" create {{.XML}}
  virsh -c "$A" list
  virsh -c "$A" migrate --live --verbose demo "$B"
  virsh -c "$B" migrate --live --verbose --p2p demo {{.A.TCPURI}}
  virsh -c "$A" destroy demo

The routers (BIRD table {{.BIRDTable}} and FRR's main table hold each one's best paths):

  birdc -s {{.BIRD.Socket}} show protocols
  birdc -s {{.BIRD.Socket}} show route all
  vtysh --vty_socket {{.FRR.Dir}} -c 'show bgp summary'
  vtysh --vty_socket {{.FRR.Dir}} -c 'show bgp ipv4 unicast' -c 'show bgp ipv6 unicast'
  vtysh --vty_socket {{.FRR.Dir}} -c 'show bgp ipv4 unicast 192.0.2.100/32'
  ip -n {{.TorNS}} route show table {{.BIRDTable}}; ip -n {{.TorNS}} -6 route show table {{.BIRDTable}}
  ip -n {{.TorNS}} route show proto bgp; ip -n {{.TorNS}} -6 route show proto bgp
  ip -ts -n {{.TorNS}} monitor route
  tail -f {{.A.VirtbgpLogPath}} {{.B.VirtbgpLogPath}}

virtbgp's own view (peers, domains, routes):

  {{.Bin}} status --socket {{.A.VirtbgpSocket}}
  {{.Bin}} status --socket {{.B.VirtbgpSocket}}

Reload the mapping after an edit (SIGHUP), on both hosts:

  kill -HUP {{.PIDA}} {{.PIDB}}

Status (processes, sessions, routes) and teardown:

  make lab-status{{.DirArg}}
  make lab-down{{.DirArg}}
`))

func instructions(w io.Writer, l *lab.Lab) error {
	mp := filepath.Join(l.Dir, "mapping.yaml")
	if c, ok := l.A.VirtbgpConfig(); ok {
		mp, _ = filepath.Abs(c.Mapping)
	}
	dirArg := ""
	if wd, err := os.Getwd(); err != nil || l.Dir != filepath.Join(wd, ".lab") {
		dirArg = " LAB_DIR=" + l.Dir
	}
	return help.Execute(w, map[string]any{
		"A":         l.A,
		"B":         l.B,
		"BIRD":      l.BIRD,
		"FRR":       l.FRR,
		"TorNS":     l.TorNS,
		"XML":       filepath.Join(l.Dir, "demo.xml"),
		"Mapping":   mp,
		"BIRDTable": lab.BIRDTable,
		"Bin":       l.VirtbgpBinary(),
		"PIDA":      l.A.VirtbgpPID(),
		"PIDB":      l.B.VirtbgpPID(),
		"DirArg":    dirArg,
	})
}
