package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPISection: the api section's values, and each problem at its line.
func TestAPISection(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.token")
	short := filepath.Join(dir, "short.token")
	os.WriteFile(good, []byte("  0123456789abcdef-ok\n"), 0o600)
	os.WriteFile(short, []byte("short\n"), 0o600)
	const head = "version: 1\nbgp: {asn: 65001, router-id: 192.0.2.1}\nmapping: {path: m.yaml}\n"
	file := filepath.Join(dir, "virtbgp.yaml")
	cfg, err := Parse(file, []byte(head+`api:
  allowed-prefixes: [198.51.100.0/24, "2001:db8:100::/48"]
  min-prefix-length: {ipv4: 24, ipv6: 64}
  write-rate: 3
  listen: 127.0.0.1:9480
  tokens:
    - {name: automation, file: good.token, access: read-write}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.API
	if len(a.Allow.Prefixes) != 2 || a.Allow.Prefixes[0] != netip.MustParsePrefix("198.51.100.0/24") ||
		a.Allow.MinBits4 != 24 || a.Allow.MinBits6 != 64 || a.WriteRate != 3 || a.Listen != "127.0.0.1:9480" ||
		len(a.Tokens) != 1 || a.Tokens[0].Name != "automation" || a.Tokens[0].Secret != "0123456789abcdef-ok" || !a.Tokens[0].Write {
		t.Errorf("api = %+v", a)
	}
	cfg, err = Parse(file, []byte(head+"control: {read-group: nogroup}\n"))
	if err != nil || cfg.Control.ReadGroup != "nogroup" || cfg.Control.ReadGID != 65534 {
		t.Errorf("control.read-group: %+v, %v", cfg.Control, err)
	}
	if s := a.Tokens[0].String(); strings.Contains(s, "0123456789abcdef") {
		t.Errorf("Token.String shows the secret: %s", s)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"listen without authentication", "api:\n  listen: 127.0.0.1:9480\n",
			"virtbgp.yaml:5: api.listen: the TCP listener needs authentication: give api.tokens, or api.tls with a client-ca"},
		{"tokens without listen", "api:\n  tokens: [{name: a, file: good.token, access: read-only}]\n",
			"virtbgp.yaml:5: api: tokens and tls are for the TCP listener, and api.listen is not set"},
		{"short token", "api:\n  listen: 127.0.0.1:9480\n  tokens: [{name: a, file: short.token, access: read-only}]\n",
			"virtbgp.yaml:6: api.tokens[0].file: the token is 5 bytes, want at least 16"},
		{"bad access", "api:\n  listen: 127.0.0.1:9480\n  tokens: [{name: a, file: good.token, access: admin}]\n",
			`virtbgp.yaml:6: api.tokens[0].access: want read-only or read-write, got "admin"`},
		{"missing token file", "api:\n  listen: 127.0.0.1:9480\n  tokens: [{name: a, file: nope, access: read-only}]\n",
			"virtbgp.yaml:6: api.tokens[0].file: cannot read " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"unknown read group", "control: {read-group: no-such-group-here}\n", "virtbgp.yaml:4: control.read-group: group: unknown group no-such-group-here"},
		{"unknown key", "api:\n  allowed-prefix: [198.51.100.0/24]\n", `virtbgp.yaml:5: api: unknown key "allowed-prefix"`},
		{"broad pool", "api:\n  allowed-prefixes: [10.0.0.0/8]\n", "virtbgp.yaml:5: api.allowed-prefixes: 10.0.0.0/8 is too broad"},
		{"write-rate 0", "api:\n  write-rate: 0\n", "virtbgp.yaml:5: api.write-rate"},
		{"tls without key", "api:\n  listen: 127.0.0.1:9480\n  tls: {cert: c.pem}\n", `api.tls: missing required key "key"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(file, []byte(head+tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
