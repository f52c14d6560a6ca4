package config

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

func TestHostWarnings(t *testing.T) {
	host := func(edit func(*Config)) *Config {
		c := &Config{StateDir: DefaultStateDir, Control: Control{Socket: DefaultControlSocket}}
		if edit != nil {
			edit(c)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  *Config
		want []string // the key each warning starts with, in order
	}{
		{"defaults", host(nil), nil},
		{"state-dir under /tmp", host(func(c *Config) { c.StateDir = "/tmp/virtbgp/state" }), []string{"state-dir /tmp/virtbgp/state "}},
		{"state-dir is /var/tmp", host(func(c *Config) { c.StateDir = "/var/tmp" }), []string{"state-dir /var/tmp "}},
		{"a name that only starts like /tmp", host(func(c *Config) { c.StateDir = "/tmpfs/virtbgp" }), nil},
		{"socket under /tmp", host(func(c *Config) { c.Control.Socket = "/tmp/c.sock" }), []string{"control.socket /tmp/c.sock "}},
		{"both", host(func(c *Config) { c.StateDir, c.Control.Socket = "/tmp/s", "/tmp/c.sock" }),
			[]string{"state-dir /tmp/s ", "control.socket /tmp/c.sock "}},
		{"status on IPv4 loopback", host(func(c *Config) { c.Status.Listen = "127.0.0.1:9479" }), nil},
		{"status on 127.0.0.2", host(func(c *Config) { c.Status.Listen = "127.0.0.2:9479" }), nil},
		{"status on IPv6 loopback", host(func(c *Config) { c.Status.Listen = "[::1]:9479" }), nil},
		{"status on localhost", host(func(c *Config) { c.Status.Listen = "localhost:9479" }), nil},
		{"status on every address", host(func(c *Config) { c.Status.Listen = ":9479" }), []string{"status.listen :9479 "}},
		{"status on 0.0.0.0", host(func(c *Config) { c.Status.Listen = "0.0.0.0:9479" }), []string{"status.listen 0.0.0.0:9479 "}},
		{"status on [::]", host(func(c *Config) { c.Status.Listen = "[::]:9479" }), []string{"status.listen [::]:9479 "}},
		{"status on a LAN address", host(func(c *Config) { c.Status.Listen = "198.18.0.11:9479" }), []string{"status.listen 198.18.0.11:9479 "}},
		{"status on a host name", host(func(c *Config) { c.Status.Listen = "hv1.example:9479" }), []string{"status.listen hv1.example:9479 "}},
		{"api on a LAN address without tls", host(func(c *Config) { c.API.Listen = "198.18.0.11:9480" }), []string{"api.listen 198.18.0.11:9480 "}},
		{"api on a LAN address with tls", host(func(c *Config) { c.API.Listen = "198.18.0.11:9480"; c.API.TLS.Config = &tls.Config{} }), nil},
		{"api on loopback", host(func(c *Config) { c.API.Listen = "127.0.0.1:9480" }), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hostWarnings(tc.cfg)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d starting with %q", got, len(tc.want), tc.want)
			}
			for i, w := range got {
				if !strings.HasPrefix(w, tc.want[i]) {
					t.Errorf("warning %d = %q, want it to start with %q", i, w, tc.want[i])
				}
			}
			if slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "\n") }) {
				t.Errorf("a warning spans lines: %q", got)
			}
		})
	}
}
