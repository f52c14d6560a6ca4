package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 17, findings 4 and 9, through the command: `check` refuses a
// mapping with prefixes too broad for a service address (alone, with the
// default limits, and under a config's routes section), and prints what
// `run` would warn about.
func TestCheckLimitsAndWarnings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	broad := write("broad.yaml", "version: 1\nvms:\n  web:\n    ips: [\"2000::/3\", 1.0.0.0/8, 198.51.100.23]\n", 0o644)
	write("narrow.yaml", "version: 1\nvms:\n  web:\n    ips: [198.51.100.23, 203.0.113.0/28]\n", 0o644)
	pw := write("tor.pw", "s3cret\n", 0o644)
	cfg := write("c.yaml", "version: 1\nbgp:\n  asn: 65001\n  router-id: 192.0.2.1\n  peers:\n"+
		"    - {address: 198.18.0.1, asn: 65000, families: [ipv6], password-file: "+pw+"}\n"+
		"status: {listen: '0.0.0.0:9479'}\nstate-dir: "+filepath.Join(dir, "state")+"\n"+
		"control: {socket: "+filepath.Join(dir, "ctl.sock")+"}\n"+
		"routes: {allowed-prefixes: [198.51.100.0/24]}\nmapping: {path: narrow.yaml}\n", 0o644)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"too broad, mapping alone", []string{"check", "--mapping", broad}, 1, nil, []string{
			broad + `:4: vm "web": 1.0.0.0/8 is a /8, shorter than routes.min-prefix-length.ipv4 (/24)`,
			broad + `:4: vm "web": 2000::/3 is a /3, shorter than routes.min-prefix-length.ipv6 (/48)`,
			"2 problem(s)"}},
		{"outside the pools, with warnings", []string{"check", "--config", cfg}, 1, []string{
			"config " + cfg + ": ok",
		}, []string{
			"warning: " + cfg + `:6: bgp.peers[0]: the session is IPv4 but carries ipv6`,
			"warning: " + cfg + `:6: bgp.peers[0].password-file: ` + pw + ` is readable by every user (mode 0644)`,
			"warning: " + cfg + `: status.listen 0.0.0.0:9479 is reachable beyond this host`,
			filepath.Join(dir, "narrow.yaml") + `:4: vm "web": 203.0.113.0/28 lies outside routes.allowed-prefixes [198.51.100.0/24]`,
			"1 problem(s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errb.String())
				}
			}
		})
	}

	// A state directory other users can write: check says so.
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	cfg2 := write("c2.yaml", "version: 1\nbgp: {asn: 65001, router-id: 192.0.2.1}\nstate-dir: "+shared+"\n"+
		"control: {socket: "+filepath.Join(dir, "ctl.sock")+"}\nmapping: {path: narrow.yaml}\n", 0o644)
	var out, errb bytes.Buffer
	if code := runMain([]string{"check", "--config", cfg2}, &out, &errb); code != 0 ||
		!strings.Contains(errb.String(), "warning: state-dir: "+shared+" is writable by other users") {
		t.Errorf("check with a shared state-dir: exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
}

// Issue 17, finding 8: `virtbgp run` refuses a state directory that other
// users can write, before it touches anything, and says which and why.
func TestRunRefusesASharedStateDir(t *testing.T) {
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte("version: 1\nvms:\n  test:\n    ips: [192.0.2.10]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("version: 1\nlibvirt: {uri: 'test:///default'}\nbgp: {asn: 65001, router-id: 192.0.2.1}\n"+
		"state-dir: "+shared+"\ncontrol: {socket: "+filepath.Join(dir, "ctl.sock")+"}\nmapping: {path: m.yaml}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := runMain([]string{"run", "--config", cfg}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "refusing to start: state-dir: "+shared+" is writable by other users") {
		t.Errorf("run: exit %d\nstderr: %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(shared, "drain.json")); err == nil {
		t.Error("run wrote drain.json into the shared directory")
	}
}
