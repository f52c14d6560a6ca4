package main

// The commands that talk to a running daemon over its control socket, an
// HTTP client of its API: status, drain, undrain, reload, announce,
// withdraw, routes.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/status"
)

// ctlCmd is one control command's flags and arguments.
type ctlCmd struct {
	name     string
	synopsis string // the usage line after "virtbgp NAME"
	args     []string
	stdout   io.Writer
	stderr   io.Writer
	socket   string
	config   string
}

// parse parses the flags of a control command, --socket and --config plus
// those that extra adds, with flags and positional arguments in any order;
// it returns the positional arguments, or an exit code: 0 after --help
// (the synopsis on stdout), 2 after a usage error, 1 if the config cannot
// be read.
func (c *ctlCmd) parse(nargs int, extra func(*flag.FlagSet)) (*control.Client, []string, int) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.socket, "socket", "", "control socket `path` of the daemon (default "+control.DefaultSocket+", or control.socket of --config)")
	fs.StringVar(&c.config, "config", "", "read the control socket's path from this config `file`")
	if extra != nil {
		extra(fs)
	}
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: virtbgp %s %s\n\nflags:\n", c.name, c.synopsis)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	var pos []string
	args := c.args
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage(c.stdout)
				return nil, nil, 0
			}
			fmt.Fprintf(c.stderr, "virtbgp %s: %v\n", c.name, err)
			printUsage(c.stderr)
			return nil, nil, 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) > nargs {
		fmt.Fprintf(c.stderr, "virtbgp %s: unexpected argument %q\n", c.name, pos[nargs])
		printUsage(c.stderr)
		return nil, nil, 2
	}
	if len(pos) < nargs {
		fmt.Fprintf(c.stderr, "virtbgp %s: missing argument\n", c.name)
		printUsage(c.stderr)
		return nil, nil, 2
	}
	path := c.socket
	if path == "" && c.config != "" {
		cfg, err := config.Load(c.config)
		if err != nil {
			fmt.Fprintf(c.stderr, "virtbgp %s: config %s: %v\n", c.name, c.config, err)
			return nil, nil, 1
		}
		path = cfg.Control.Socket
	}
	if path == "" {
		path = control.DefaultSocket
	}
	return &control.Client{Path: path}, pos, -1
}

func (c *ctlCmd) fail(err error) int {
	fmt.Fprintf(c.stderr, "virtbgp %s: %v\n", c.name, err)
	return 1
}

// cmdStatus is `virtbgp status [--socket PATH] [--json]`: the daemon's
// status as a table, or its status.Report as indented JSON.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	c := &ctlCmd{name: "status", synopsis: "[--json] [--socket PATH | --config FILE]", args: args, stdout: stdout, stderr: stderr}
	cl, _, code := c.parse(0, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	})
	if cl == nil {
		return code
	}
	r, err := cl.Status(context.Background())
	if err != nil {
		return c.fail(err)
	}
	if asJSON {
		err = writeJSON(stdout, r)
	} else {
		err = status.WriteTable(stdout, r)
	}
	if err != nil {
		return c.fail(fmt.Errorf("write: %w", err))
	}
	return 0
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cmdControl is `virtbgp drain|undrain|reload [--socket PATH]`: it asks the
// daemon to do op and prints the daemon's message.
func cmdControl(op string, args []string, stdout, stderr io.Writer) int {
	c := &ctlCmd{name: op, synopsis: "[--socket PATH | --config FILE]", args: args, stdout: stdout, stderr: stderr}
	cl, _, code := c.parse(0, nil)
	if cl == nil {
		return code
	}
	var call func(context.Context) (string, error)
	switch op {
	case control.OpDrain:
		call = cl.Drain
	case control.OpUndrain:
		call = cl.Undrain
	case control.OpReload:
		call = cl.Reload
	default:
		panic("cmdControl: unknown op " + op)
	}
	msg, err := call(context.Background())
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(stdout, msg)
	return 0
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// optUint is an optional unsigned number flag.
type optUint struct {
	v   *uint32
	set bool
}

func (o *optUint) String() string {
	if o.v == nil {
		return ""
	}
	return fmt.Sprint(*o.v)
}

func (o *optUint) Set(s string) error {
	var v uint32
	if _, err := fmt.Sscan(s, &v); err != nil || fmt.Sprint(v) != s {
		return fmt.Errorf("want an integer from 0 to 4294967295, got %q", s)
	}
	o.v, o.set = &v, true
	return nil
}

// cmdAnnounce is `virtbgp announce PREFIX [--med N] [--community C ...]
// [--ttl D] [--note TEXT] ...`: a manual route.
func cmdAnnounce(args []string, stdout, stderr io.Writer) int {
	var (
		req            manual.Request
		med, localPref optUint
		prepend        int
		comms, large   listFlag
		asJSON         bool
	)
	c := &ctlCmd{name: "announce", synopsis: "PREFIX [--med N] [--local-pref N] [--prepend N] [--next-hop ADDR] [--community C ...] [--large-community C ...] [--ttl D] [--note TEXT] [--json] [--socket PATH | --config FILE]",
		args: args, stdout: stdout, stderr: stderr}
	prepend = -1
	cl, pos, code := c.parse(1, func(fs *flag.FlagSet) {
		fs.Var(&med, "med", "MULTI_EXIT_DISC `N`")
		fs.Var(&localPref, "local-pref", "LOCAL_PREF `N` (iBGP peers only)")
		fs.IntVar(&prepend, "prepend", -1, "AS-path prepend `count`, 0 to 16")
		fs.StringVar(&req.NextHop, "next-hop", "", "next hop `address` (default self); must be in api.allowed-next-hops")
		fs.Var(&comms, "community", "standard community `C` (ASN:value, no-export, blackhole, ...); repeat for more")
		fs.Var(&large, "large-community", "large community `C` (GA:LD1:LD2); repeat for more")
		fs.StringVar(&req.TTL, "ttl", "", "lease `duration` (like 30s, 10m): withdrawn when it ends unless announced again")
		fs.StringVar(&req.Note, "note", "", "free `text` for the operators")
		fs.BoolVar(&asJSON, "json", false, "print the route as JSON")
	})
	if cl == nil {
		return code
	}
	req.Prefix = pos[0]
	req.MED, req.LocalPref = med.v, localPref.v
	if prepend >= 0 {
		req.ASPathPrepend = &prepend
	}
	req.Communities, req.LargeCommunities = comms, large
	r, err := cl.Announce(context.Background(), req)
	if err != nil {
		return c.fail(err)
	}
	if asJSON {
		if err := writeJSON(stdout, r); err != nil {
			return c.fail(err)
		}
		return 0
	}
	lease := "no lease"
	if r.TTL != "" {
		lease = fmt.Sprintf("lease %s, until %s", r.TTL, r.Expires.Local().Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "announced %s (%s)\n", r.Prefix, lease)
	return 0
}

// cmdWithdraw is `virtbgp withdraw PREFIX`: removes a manual route.
func cmdWithdraw(args []string, stdout, stderr io.Writer) int {
	c := &ctlCmd{name: "withdraw", synopsis: "PREFIX [--socket PATH | --config FILE]", args: args, stdout: stdout, stderr: stderr}
	cl, pos, code := c.parse(1, nil)
	if cl == nil {
		return code
	}
	r, err := cl.Withdraw(context.Background(), pos[0])
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(stdout, "withdrawn %s (created by %s at %s)\n", r.Prefix, r.CreatedBy, r.Created.Local().Format(time.RFC3339))
	return 0
}

// cmdRoutes is `virtbgp routes [--json]`: the manual routes in force.
func cmdRoutes(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	c := &ctlCmd{name: "routes", synopsis: "[--json] [--socket PATH | --config FILE]", args: args, stdout: stdout, stderr: stderr}
	cl, _, code := c.parse(0, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the routes as JSON")
	})
	if cl == nil {
		return code
	}
	rs, err := cl.ManualRoutes(context.Background())
	if err != nil {
		return c.fail(err)
	}
	if asJSON {
		if err := writeJSON(stdout, control.ManualRoutes{Routes: rs}); err != nil {
			return c.fail(err)
		}
		return 0
	}
	if err := writeManualTable(stdout, rs); err != nil {
		return c.fail(fmt.Errorf("write: %w", err))
	}
	return 0
}

// writeManualTable prints manual routes, one a line.
func writeManualTable(w io.Writer, rs []manual.Route) error {
	if len(rs) == 0 {
		_, err := fmt.Fprintln(w, "no manual routes")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tNEXT-HOP\tMED\tCOMMUNITIES\tEXPIRES\tCREATED-BY\tCREATED\tNOTE")
	for _, r := range rs {
		med := "-"
		if r.MED != nil {
			med = fmt.Sprint(*r.MED)
		}
		comms := strings.Join(append(append([]string{}, r.Communities...), r.LargeCommunities...), " ")
		if comms == "" {
			comms = "-"
		}
		exp := "never"
		if !r.Expires.IsZero() {
			exp = r.Expires.Local().Format(time.RFC3339) + " (" + r.TTL + ")"
		}
		note := r.Note
		if note == "" {
			note = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Prefix, r.NextHop, med, comms, exp, r.CreatedBy,
			r.Created.Local().Format(time.RFC3339), note)
	}
	return tw.Flush()
}
