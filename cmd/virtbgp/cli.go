package main

// The command-line conventions every subcommand shares: `--help` (or -h)
// prints the command's synopsis and flags on stdout and exits 0; an unknown
// flag or a bad argument prints the problem and the synopsis on stderr and
// exits 2. A subcommand gets them by making its flag set with newFlagSet and
// parsing with parseFlags; its synopsis and summary are its entry in
// commands, which also feeds `virtbgp help`, the man page and the bash
// completion (docs_test.go generates both from it).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/mapping"
)

// command is one subcommand as the help, the man page and the completion
// show it.
type command struct {
	name     string   // as typed after virtbgp: "check", "metadata set"
	synopsis []string // the forms of its arguments after the name, one a line
	brief    string   // what it does, in a few words, for the list of commands
	summary  string   // what it does, one or more sentences
	run      func(args []string, stdout, stderr io.Writer) int
}

// commands returns every subcommand, in the order help lists them.
func commands() []*command {
	return []*command{
		{name: "run", brief: "run the daemon",
			synopsis: []string{"[--config FILE] [--log-level LEVEL] [--log-format text|json]"},
			summary: "Run the daemon: announce the routes of this host's running VMs to the BGP peers of the config " +
				"(default " + defaultConfig + ") until SIGTERM or SIGINT; SIGHUP reloads the config and the mapping.",
			run: cmdRun},
		{name: "check", brief: "validate the config, a mapping or a domain XML",
			synopsis: []string{"[--config FILE]", "--mapping PATH",
				"--domain-xml FILE [--allowed-prefixes P,...] [--allowed-next-hops P,...] [--min-prefix-length V4,V6] [--nova-ip-types T,...]"},
			summary: "Validate the config and the mapping it names (or a mapping file or directory alone, or the metadata of a domain XML), " +
				"print every problem as file:line: problem, and exit 1 on any. Warnings (state under /tmp, a status endpoint " +
				"beyond loopback) are printed too and do not fail.",
			run: cmdCheck},
		{name: "metadata show", brief: "show and check a domain's virtbgp metadata",
			synopsis: []string{"--domain NAME [--connect URI] [--live | --config] [--routes]"},
			summary:  "Print a domain's virtbgp metadata element (or the routes it gives) and check it.",
			run:      metadataOp("show")},
		{name: "metadata set", brief: "check and write a domain's virtbgp metadata",
			synopsis: []string{"--domain NAME [--connect URI] [--live] [--config] (--file FILE | ELEMENT)"},
			summary: "Check a virtbgp metadata element, then write it into the domain's definition through libvirt; " +
				"an element that does not check is never written. The element's namespace is " + mapping.MetadataNS +
				", its key " + mapping.MetadataKey + ": the same as virsh metadata DOMAIN --uri " + mapping.MetadataNS +
				" --key " + mapping.MetadataKey + " --set ELEMENT --live --config.",
			run: metadataOp("set")},
		{name: "metadata clear", brief: "remove a domain's virtbgp metadata",
			synopsis: []string{"--domain NAME [--connect URI] [--live] [--config]"},
			summary:  "Remove the domain's virtbgp metadata element.",
			run:      metadataOp("clear")},
		{name: "status", brief: "show the running daemon",
			synopsis: []string{"[--socket PATH | --config FILE] [--json]"},
			summary: "Show the running daemon: peers, domains and where their routes come from, announced routes, " +
				"manual routes, the mapping in force, drain state, libvirt connection.",
			run: cmdStatus},
		{name: control.OpDrain, brief: "withdraw everything gracefully for maintenance",
			synopsis: []string{"[--socket PATH | --config FILE]"},
			summary: "Drain this host for maintenance: announce every route with GRACEFUL_SHUTDOWN (RFC 8326), wait " +
				"drain.graceful-shutdown-time, then withdraw everything. The host stays drained across restarts.",
			run: ctlOp(control.OpDrain)},
		{name: control.OpUndrain, brief: "undo a drain",
			synopsis: []string{"[--socket PATH | --config FILE]"},
			summary:  "Undo a drain: announce the routes normally again.",
			run:      ctlOp(control.OpUndrain)},
		{name: control.OpReload, brief: "reload the config and the mapping now",
			synopsis: []string{"[--socket PATH | --config FILE]"},
			summary:  "Reload the config (peers) and the mapping now, as SIGHUP does, and print what changed or every problem.",
			run:      ctlOp(control.OpReload)},
		{name: "announce", brief: "announce a manual route, or renew its lease",
			synopsis: []string{"PREFIX [--med N] [--local-pref N] [--prepend N] [--next-hop ADDR] [--community C ...] " +
				"[--large-community C ...] [--ttl DURATION] [--note TEXT] [--json] [--socket PATH | --config FILE]"},
			summary: "Announce a manual route through the daemon's API: a service IP of the host, a VM outside libvirt, " +
				"an emergency blackhole (--community blackhole). It must lie in api.allowed-prefixes; a prefix the " +
				"mapping gives to a VM is refused. With --ttl it is a lease, withdrawn when it ends unless announced " +
				"again. Manual routes survive restarts (state-dir).",
			run: cmdAnnounce},
		{name: "withdraw", brief: "withdraw a manual route",
			synopsis: []string{"PREFIX [--socket PATH | --config FILE]"},
			summary:  "Withdraw the manual route of PREFIX (an address or a prefix).",
			run:      cmdWithdraw},
		{name: "routes", brief: "list the manual routes",
			synopsis: []string{"[--socket PATH | --config FILE] [--json]"},
			summary:  "List the manual routes in force, with their attributes, who created them and when, and when their lease ends.",
			run:      cmdRoutes},
		{name: "maintenance on", brief: "take a domain's routes out of service",
			synopsis: []string{"DOMAIN [--ip ADDR] [--note TEXT] [--ttl DURATION] [--json] [--socket PATH | --config FILE]"},
			summary: "Put a domain (its libvirt name or UUID), or with --ip one of its routes, in maintenance through the " +
				"daemon's API: its routes are withdrawn, or depreferenced where its mapping entry's health says " +
				"on-failure: depreference, whether or not it has health checks, until `virtbgp maintenance off` or the " +
				"end of --ttl. Setting it again replaces the note and the TTL. Maintenance survives restarts (state-dir).",
			run: cmdMaintenanceOn},
		{name: "maintenance off", brief: "end a domain's maintenance",
			synopsis: []string{"DOMAIN [--ip ADDR] [--socket PATH | --config FILE]"},
			summary: "End the maintenance of a domain (its name or UUID): every entry of it, or with --ip that route's; " +
				"its routes are announced again as the mapping and their health checks say.",
			run: cmdMaintenanceOff},
		{name: "maintenance list", brief: "list what is in maintenance",
			synopsis: []string{"[--socket PATH | --config FILE] [--json]"},
			summary:  "List the maintenance entries in force: the domain, the routes (all, or one), who set it and when, when it ends, the note.",
			run:      cmdMaintenanceList},
		{name: "version", brief: "print the version",
			synopsis: []string{""},
			summary:  "Print the version, the commit it was built from, and the Go version.",
			run:      cmdVersion},
		{name: "help", brief: "list the commands, or show one command's help",
			synopsis: []string{"[COMMAND]"},
			summary:  "Print the commands, or one command's synopsis and flags.",
			run:      cmdHelp},
	}
}

// findCommand returns the command that args start with and the arguments
// after its name, or nil. A group name alone ("metadata") finds nothing.
func findCommand(args []string) (*command, []string) {
	var best *command
	bestLen := 0
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(words) <= len(args) && len(words) > bestLen && strings.Join(args[:len(words)], " ") == c.name {
			best, bestLen = c, len(words)
		}
	}
	if best == nil {
		return nil, args
	}
	return best, args[bestLen:]
}

// group returns the commands whose name starts with the word prefix.
func group(prefix string) []*command {
	var cs []*command
	for _, c := range commands() {
		if strings.HasPrefix(c.name, prefix+" ") {
			cs = append(cs, c)
		}
	}
	return cs
}

// writeUsage writes the usage lines of cs.
func writeUsage(w io.Writer, cs []*command) {
	for i, c := range cs {
		for j, s := range c.synopsis {
			lead := "usage: "
			if i > 0 || j > 0 {
				lead = "       "
			}
			fmt.Fprintln(w, strings.TrimRight(lead+"virtbgp "+c.name+" "+s, " "))
		}
	}
}

// flagSetHook, if set, is called with each flag set newFlagSet makes: the
// generator of the man page and the completion collects the flags with it.
var flagSetHook func(c *command, fs *flag.FlagSet)

// newFlagSet returns the flag set of command name, which parseFlags parses
// by the conventions above.
func newFlagSet(name string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c, _ := findCommand(strings.Fields(name))
	fs.Usage = func() { writeHelp(fs.Output(), c, fs) }
	if flagSetHook != nil && c != nil {
		defer flagSetHook(c, fs)
	}
	return fs
}

// parseFlags parses args into fs. When it returns false, the command is
// done and exits with code: 0 after --help (the help is on stdout), 2 after
// a usage error (the problem and the synopsis are on stderr).
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (code int, ok bool) {
	usage := fs.Usage
	fs.Usage = func() {} // the flag package's own call: printed below instead
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		errOut := fs.Output()
		fs.SetOutput(stdout)
		fs.Usage()
		fs.SetOutput(errOut)
		return 0, false
	case err != nil: // the flag package has printed the problem
		if c, _ := findCommand(strings.Fields(fs.Name())); c != nil {
			writeUsage(fs.Output(), []*command{c})
		}
		fmt.Fprintf(fs.Output(), "Run 'virtbgp %s --help' for the flags.\n", fs.Name())
		return 2, false
	}
	return 0, true
}

// usageError reports a bad argument of the command of fs on stderr, with
// the synopsis, and returns exit code 2.
func usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(fs.Output(), "virtbgp %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	if c, _ := findCommand(strings.Fields(fs.Name())); c != nil {
		writeUsage(fs.Output(), []*command{c})
	}
	return 2
}

// noArgs is the check of a command that takes no arguments after its flags.
func noArgs(fs *flag.FlagSet) (int, bool) {
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected argument %q", fs.Arg(0)), false
	}
	return 0, true
}

// writeHelp writes the help of command c: synopsis, summary and flags.
func writeHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	if c == nil {
		fmt.Fprintf(w, "usage: virtbgp %s [flags]\n", fs.Name())
	} else {
		writeUsage(w, []*command{c})
		fmt.Fprintf(w, "\n%s\n", wrap(c.summary, 78))
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintf(w, "\nflags:\n")
			first = false
		}
		fmt.Fprintf(w, "  %s\n      %s\n", flagForm(f), flagText(f))
	})
}

// flagForm is how a flag is typed: --name, or --name VALUE.
func flagForm(f *flag.Flag) string {
	arg, _ := flag.UnquoteUsage(f)
	if isBool(f) {
		return "--" + f.Name
	}
	if arg == "" {
		arg = "value"
	}
	return "--" + f.Name + " " + strings.ToUpper(arg)
}

// flagText is a flag's description with its default, if it has one.
func flagText(f *flag.Flag) string {
	_, text := flag.UnquoteUsage(f)
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
		text += " (default " + f.DefValue + ")"
	}
	return text
}

// isBool reports whether f is a boolean flag (--name alone sets it).
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// wrap breaks s into lines of at most width characters at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for _, word := range strings.Fields(s) {
		if n > 0 && n+1+len(word) > width {
			b.WriteByte('\n')
			n = 0
		} else if n > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

// usage writes the list of commands.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: virtbgp <command> [flags] [arguments]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.brief)
	}
	fmt.Fprintf(w, "\nRun 'virtbgp <command> --help' for a command's flags. status, drain, undrain, reload,\n"+
		"announce, withdraw, routes and maintenance talk to the daemon's HTTP API on its control\n"+
		"socket (--socket, default %s, or control.socket of --config; root only).\n", control.DefaultSocket)
}

// cmdHelp is `virtbgp help [COMMAND]`.
func cmdHelp(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("help", stdout, stderr)
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	args = fs.Args()
	if len(args) == 0 {
		usage(stdout)
		return 0
	}
	if cs := group(strings.Join(args, " ")); len(cs) > 0 {
		writeUsage(stdout, cs)
		return 0
	}
	c, rest := findCommand(args)
	if c == nil || len(rest) > 0 {
		return usageError(fs, "unknown command %q", strings.Join(args, " "))
	}
	return c.run([]string{"--help"}, stdout, stderr)
}

// cmdVersion is `virtbgp version`.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", stdout, stderr)
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if code, ok := noArgs(fs); !ok {
		return code
	}
	fmt.Fprintln(stdout, versionString())
	return 0
}
