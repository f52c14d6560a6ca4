package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpConventions runs every subcommand with --help and -h (the
// synopsis on stdout, exit 0, nothing on stderr) and with an unknown flag (a
// usage error and the synopsis on stderr, exit 2, nothing on stdout).
func TestHelpConventions(t *testing.T) {
	cmds := commands()
	if len(cmds) < 11 {
		t.Fatalf("only %d commands", len(cmds))
	}
	for _, c := range cmds {
		name := strings.Fields(c.name)
		synopsis := "usage: virtbgp " + c.name
		for _, help := range []string{"--help", "-h", "-help"} {
			t.Run(c.name+" "+help, func(t *testing.T) {
				var out, errb bytes.Buffer
				code := runMain(append(append([]string{}, name...), help), &out, &errb)
				if code != 0 || errb.Len() > 0 {
					t.Errorf("exit %d, stderr %q; want 0 and nothing", code, errb.String())
				}
				if !strings.HasPrefix(out.String(), synopsis) {
					t.Errorf("stdout does not start with %q:\n%s", synopsis, out.String())
				}
				if !strings.Contains(out.String(), c.summary[:20]) {
					t.Errorf("stdout lacks the summary %q:\n%s", c.summary, out.String())
				}
			})
		}
		t.Run(c.name+" unknown flag", func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(append(append([]string{}, name...), "--no-such-flag"), &out, &errb)
			if code != 2 || out.Len() > 0 {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out.String())
			}
			for _, want := range []string{"flag provided but not defined: -no-such-flag", synopsis} {
				if !strings.Contains(errb.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, errb.String())
				}
			}
		})
	}
}

// TestHelpOfCommandsWithFlags: a command's --help lists each of its flags.
func TestHelpListsFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"run"}, []string{"--config FILE", "--log-level", "--log-format"}},
		{[]string{"check"}, []string{"--config FILE", "--mapping PATH", "--domain-xml FILE", "--allowed-prefixes PREFIXES"}},
		{[]string{"status"}, []string{"--socket PATH", "--json\n"}},
		{[]string{"drain"}, []string{"--socket PATH"}},
		{[]string{"metadata", "set"}, []string{"--domain NAME", "--connect URI", "--live\n", "--config\n", "--file FILE"}},
		{[]string{"metadata", "show"}, []string{"--routes\n"}},
	} {
		var out, errb bytes.Buffer
		if code := runMain(append(tc.args, "--help"), &out, &errb); code != 0 {
			t.Fatalf("%v --help: exit %d", tc.args, code)
		}
		for _, f := range tc.flags {
			if !strings.Contains(out.String(), "  "+f) {
				t.Errorf("%v --help lacks %q:\n%s", tc.args, f, out.String())
			}
		}
	}
}

// TestTopLevelUsage: the list of commands on --help and help (stdout, 0),
// and with no command or an unknown one (stderr, 2).
func TestTopLevelUsage(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		code    int
		onOut   bool
		message string
	}{
		{[]string{"--help"}, 0, true, ""},
		{[]string{"-h"}, 0, true, ""},
		{[]string{"help"}, 0, true, ""},
		{nil, 2, false, ""},
		{[]string{"frobnicate"}, 2, false, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, 2, false, `unknown command "frobnicate"`},
		{[]string{"metadata"}, 2, false, "usage: virtbgp metadata show"},
		{[]string{"metadata", "frob"}, 2, false, `virtbgp metadata: unknown command "frob"`},
		{[]string{"metadata", "--help"}, 0, true, "usage: virtbgp metadata show"},
		{[]string{"help", "metadata"}, 0, true, "usage: virtbgp metadata show"},
		{[]string{"drain", "now"}, 2, false, `virtbgp drain: unexpected argument "now"`},
		{[]string{"--version"}, 0, true, "virtbgp " + releaseVersion + " (commit "},
	} {
		var out, errb bytes.Buffer
		code := runMain(tc.args, &out, &errb)
		got, other := out.String(), errb.String()
		if !tc.onOut {
			got, other = other, got
		}
		if code != tc.code || got == "" || other != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d and output on one of them", tc.args, code, out.String(), errb.String(), tc.code)
		}
		if !strings.Contains(got, tc.message) {
			t.Errorf("%q: output lacks %q:\n%s", tc.args, tc.message, got)
		}
	}
}
