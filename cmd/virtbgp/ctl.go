package main

// The commands that talk to a running daemon over its control socket:
// status, drain, undrain, reload.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/status"
)

// ctlFlags parses the flags of a control command: --socket, plus those
// that extra adds. It returns the client, or nil after a usage error.
func ctlFlags(name string, args []string, stdout, stderr io.Writer, extra func(*flag.FlagSet)) (*control.Client, int) {
	fs := newFlagSet(name, stdout, stderr)
	socket := fs.String("socket", control.DefaultSocket, "control socket `path` of the daemon")
	if extra != nil {
		extra(fs)
	}
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return nil, code
	}
	if code, ok := noArgs(fs); !ok {
		return nil, code
	}
	return &control.Client{Path: *socket}, 0
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
		fmt.Fprintf(stderr, "virtbgp status: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = status.WriteTable(stdout, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "virtbgp status: write: %v\n", err)
		return 1
	}
	return 0
}

// cmdControl is `virtbgp drain|undrain|reload [--socket PATH]`: it asks the
// daemon to do op and prints the daemon's message.
func cmdControl(op string, args []string, stdout, stderr io.Writer) int {
	c, code := ctlFlags(op, args, stdout, stderr, nil)
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
	default:
		panic("cmdControl: unknown op " + op)
	}
	msg, err := call(context.Background())
	if err != nil {
		fmt.Fprintf(stderr, "virtbgp %s: %v\n", op, err)
		return 1
	}
	fmt.Fprintln(stdout, msg)
	return 0
}

// ctlOp is the run function of `virtbgp op` for a control operation.
func ctlOp(op string) func(args []string, stdout, stderr io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int { return cmdControl(op, args, stdout, stderr) }
}
