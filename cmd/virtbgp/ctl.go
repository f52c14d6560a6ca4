package main

// The commands that talk to a running daemon, HTTP clients of its API on
// the control socket: status, drain, undrain, reload, announce, withdraw,
// routes, maintenance on|off|list.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/status"
)

// ctlFlags parses the flags of a control command without arguments:
// --socket and --config, plus those that extra adds. It returns the
// client, or nil and the exit code.
func ctlFlags(name string, args []string, stdout, stderr io.Writer, extra func(*flag.FlagSet)) (*control.Client, int) {
	c, _, code := ctlArgs(name, 0, args, stdout, stderr, extra)
	return c, code
}

// ctlArgs parses the flags of a control command that takes nargs
// arguments, flags and arguments in any order (`announce 192.0.2.1 --med
// 5`). The socket is --socket, else control.socket of --config, else
// control.DefaultSocket. It returns the client and the arguments, or nil
// and the exit code.
func ctlArgs(name string, nargs int, args []string, stdout, stderr io.Writer, extra func(*flag.FlagSet)) (*control.Client, []string, int) {
	fs := newFlagSet(name, stdout, stderr)
	socket := fs.String("socket", "", "control socket `path` of the daemon (default "+control.DefaultSocket+", or control.socket of --config)")
	cfgFile := fs.String("config", "", "read the control socket's path from this config `file`")
	if extra != nil {
		extra(fs)
	}
	var pos []string
	for {
		if code, ok := parseFlags(fs, args, stdout); !ok {
			return nil, nil, code
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(pos) > nargs:
		return nil, nil, usageError(fs, "unexpected argument %q", pos[nargs])
	case len(pos) < nargs:
		return nil, nil, usageError(fs, "missing argument")
	}
	path := *socket
	if path == "" && *cfgFile != "" {
		cfg, err := config.Load(*cfgFile)
		if err != nil {
			fmt.Fprintf(stderr, "virtbgp %s: config %s: %v\n", name, *cfgFile, err)
			return nil, nil, 1
		}
		path = cfg.Control.Socket
	}
	if path == "" {
		path = control.DefaultSocket
	}
	return &control.Client{Path: path}, pos, 0
}

// ctlFail reports a failed call of command name.
func ctlFail(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "virtbgp %s: %v\n", name, err)
	return 1
}

// cmdStatus is `virtbgp status [--socket PATH] [--json]`: the daemon's
// status as a table, or its status.Report as indented JSON.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	c, code := ctlFlags("status", args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	})
	if c == nil {
		return code
	}
	r, err := c.Status(context.Background())
	if err != nil {
		return ctlFail(stderr, "status", err)
	}
	if asJSON {
		err = writeJSON(stdout, r)
	} else {
		err = status.WriteTable(stdout, r)
	}
	if err != nil {
		return ctlFail(stderr, "status", fmt.Errorf("write: %w", err))
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
	var force bool
	var extra func(*flag.FlagSet)
	if op == control.OpReload {
		extra = func(fs *flag.FlagSet) {
			fs.BoolVar(&force, "force", false, "confirm a mapping reload held because it withdraws more than mapping.max-withdraw-percent of the announced routes")
		}
	}
	c, code := ctlFlags(op, args, stdout, stderr, extra)
	if c == nil {
		return code
	}
	var call func(context.Context) (string, error)
	switch op {
	case control.OpDrain:
		call = c.Drain
	case control.OpUndrain:
		call = c.Undrain
	case control.OpReload:
		call = c.Reload
		if force {
			call = c.ReloadForce
		}
	default:
		panic("cmdControl: unknown op " + op)
	}
	msg, err := call(context.Background())
	if err != nil {
		return ctlFail(stderr, op, err)
	}
	fmt.Fprintln(stdout, msg)
	return 0
}

// ctlOp is the run function of `virtbgp op` for a control operation.
func ctlOp(op string) func(args []string, stdout, stderr io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int { return cmdControl(op, args, stdout, stderr) }
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// optUint is an optional unsigned 32-bit number flag.
type optUint struct{ v *uint32 }

func (o *optUint) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return fmt.Sprint(*o.v)
}

func (o *optUint) Set(s string) error {
	var v uint32
	if _, err := fmt.Sscan(s, &v); err != nil || fmt.Sprint(v) != s {
		return fmt.Errorf("want an integer from 0 to 4294967295, got %q", s)
	}
	o.v = &v
	return nil
}

// cmdAnnounce is `virtbgp announce PREFIX [--med N] [--community C ...]
// [--ttl D] [--note TEXT] ...`: a manual route, or its renewal.
func cmdAnnounce(args []string, stdout, stderr io.Writer) int {
	var (
		req            manual.Request
		med, localPref optUint
		prepend        int
		comms, large   listFlag
		asJSON         bool
	)
	c, pos, code := ctlArgs("announce", 1, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.Var(&med, "med", "MULTI_EXIT_DISC `N`")
		fs.Var(&localPref, "local-pref", "LOCAL_PREF `N` (iBGP peers only)")
		fs.IntVar(&prepend, "prepend", -1, "AS-path prepend `count`, 0 to 16 (-1: none)")
		fs.StringVar(&req.NextHop, "next-hop", "", "next hop `address` (default self); must lie in api.allowed-next-hops")
		fs.Var(&comms, "community", "standard community `C` (ASN:value, no-export, no-advertise, blackhole, graceful-shutdown); repeat for more")
		fs.Var(&large, "large-community", "large community `C` (GA:LD1:LD2); repeat for more")
		fs.StringVar(&req.TTL, "ttl", "", "lease `duration` (like 30s, 10m): withdrawn when it ends unless announced again")
		fs.StringVar(&req.Note, "note", "", "free `text` for the operators")
		fs.BoolVar(&asJSON, "json", false, "print the route as JSON")
	})
	if c == nil {
		return code
	}
	req.Prefix = pos[0]
	req.MED, req.LocalPref = med.v, localPref.v
	if prepend >= 0 {
		req.ASPathPrepend = &prepend
	}
	req.Communities, req.LargeCommunities = comms, large
	r, err := c.Announce(context.Background(), req)
	if err != nil {
		return ctlFail(stderr, "announce", err)
	}
	if asJSON {
		if err := writeJSON(stdout, r); err != nil {
			return ctlFail(stderr, "announce", err)
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
	c, pos, code := ctlArgs("withdraw", 1, args, stdout, stderr, nil)
	if c == nil {
		return code
	}
	r, err := c.Withdraw(context.Background(), pos[0])
	if err != nil {
		return ctlFail(stderr, "withdraw", err)
	}
	fmt.Fprintf(stdout, "withdrawn %s (created by %s at %s)\n", r.Prefix, r.CreatedBy, r.Created.Local().Format(time.RFC3339))
	return 0
}

// cmdRoutes is `virtbgp routes [--json]`: the manual routes in force.
func cmdRoutes(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	c, code := ctlFlags("routes", args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the routes as JSON")
	})
	if c == nil {
		return code
	}
	rs, err := c.ManualRoutes(context.Background())
	if err != nil {
		return ctlFail(stderr, "routes", err)
	}
	if asJSON {
		err = writeJSON(stdout, control.ManualRoutes{Routes: rs})
	} else {
		err = writeManualTable(stdout, rs)
	}
	if err != nil {
		return ctlFail(stderr, "routes", fmt.Errorf("write: %w", err))
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

// cmdMaintenanceOn is `virtbgp maintenance on DOMAIN [--ip ADDR] [--note
// TEXT] [--ttl D]`.
func cmdMaintenanceOn(args []string, stdout, stderr io.Writer) int {
	const name = "maintenance on"
	var (
		req    maintenance.Request
		asJSON bool
	)
	c, pos, code := ctlArgs(name, 1, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&req.IP, "ip", "", "only the route of this `address` (or prefix) of the domain")
		fs.StringVar(&req.Note, "note", "", "free `text` for the operators (why, a ticket)")
		fs.StringVar(&req.TTL, "ttl", "", "end the maintenance by itself after this `duration` (like 30m, 2h)")
		fs.BoolVar(&asJSON, "json", false, "print the entry as JSON")
	})
	if c == nil {
		return code
	}
	e, err := c.MaintenanceOn(context.Background(), pos[0], req)
	if err != nil {
		return ctlFail(stderr, name, err)
	}
	if asJSON {
		if err := writeJSON(stdout, e); err != nil {
			return ctlFail(stderr, name, err)
		}
		return 0
	}
	until := "until switched off"
	if e.TTL != "" {
		until = fmt.Sprintf("until %s (ttl %s)", e.Expires.Local().Format(time.RFC3339), e.TTL)
	}
	fmt.Fprintf(stdout, "maintenance on: %s %s, %s\n", e.Domain, entryRoutes(e), until)
	return 0
}

// cmdMaintenanceOff is `virtbgp maintenance off DOMAIN [--ip ADDR]`.
func cmdMaintenanceOff(args []string, stdout, stderr io.Writer) int {
	const name = "maintenance off"
	var ip string
	c, pos, code := ctlArgs(name, 1, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&ip, "ip", "", "only the maintenance of this `address` (or prefix) of the domain")
	})
	if c == nil {
		return code
	}
	es, err := c.MaintenanceOff(context.Background(), pos[0], ip)
	if err != nil {
		return ctlFail(stderr, name, err)
	}
	for _, e := range es {
		fmt.Fprintf(stdout, "maintenance off: %s %s (set by %s at %s)\n", e.Domain, entryRoutes(e), e.SetBy, e.Since.Local().Format(time.RFC3339))
	}
	return 0
}

// cmdMaintenanceList is `virtbgp maintenance list [--json]`.
func cmdMaintenanceList(args []string, stdout, stderr io.Writer) int {
	const name = "maintenance list"
	var asJSON bool
	c, code := ctlFlags(name, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the entries as JSON")
	})
	if c == nil {
		return code
	}
	es, err := c.Maintenance(context.Background())
	if err != nil {
		return ctlFail(stderr, name, err)
	}
	if asJSON {
		if es == nil {
			es = []maintenance.Entry{}
		}
		err = writeJSON(stdout, control.MaintenanceList{Entries: es})
	} else {
		err = writeMaintenanceTable(stdout, es)
	}
	if err != nil {
		return ctlFail(stderr, name, fmt.Errorf("write: %w", err))
	}
	return 0
}

// entryRoutes says which routes an entry covers: "(all routes)" or
// "192.0.2.1/32".
func entryRoutes(e maintenance.Entry) string {
	if e.Prefix.IsValid() {
		return e.Prefix.String()
	}
	return "(all routes)"
}

// writeMaintenanceTable prints maintenance entries, one a line.
func writeMaintenanceTable(w io.Writer, es []maintenance.Entry) error {
	if len(es) == 0 {
		_, err := fmt.Fprintln(w, "nothing in maintenance")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tROUTES\tSET-BY\tSINCE\tEXPIRES\tNOTE")
	for _, e := range es {
		routes := "all"
		if e.Prefix.IsValid() {
			routes = e.Prefix.String()
		}
		exp := "never"
		if !e.Expires.IsZero() {
			exp = e.Expires.Local().Format(time.RFC3339) + " (" + e.TTL + ")"
		}
		note := e.Note
		if note == "" {
			note = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Domain, routes, e.SetBy, e.Since.Local().Format(time.RFC3339), exp, note)
	}
	return tw.Flush()
}
