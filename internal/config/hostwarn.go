package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
)

// tmpDirs are the directories a systemd unit with PrivateTmp=yes (as
// virtbgp.service has) replaces with a private, per-run directory: what the
// service writes there is gone after a stop, and other processes (virtbgp
// status) do not see it.
var tmpDirs = []string{"/tmp", "/var/tmp"}

// underTmp reports whether path lies in one of tmpDirs.
func underTmp(path string) bool {
	p := filepath.Clean(path)
	for _, d := range tmpDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// hostWarnings returns what in a valid config works against running it as
// the packaged service: state or the control socket under /tmp, a status
// endpoint (no authentication) or an API without TLS reachable from beyond
// this host. Each is one sentence naming the key; parse adds them to
// Config.Warnings (with the file, no line), so check, run and a reload say
// them.
func hostWarnings(cfg *Config) []string {
	var warn []string
	if underTmp(cfg.StateDir) {
		warn = append(warn, fmt.Sprintf("state-dir %s is under /tmp: with the unit's PrivateTmp=yes the drain "+
			"state is lost on every stop, so a drained host serves again after a restart; use %s",
			cfg.StateDir, DefaultStateDir))
	}
	if underTmp(cfg.Control.Socket) {
		warn = append(warn, fmt.Sprintf("control.socket %s is under /tmp: with the unit's PrivateTmp=yes "+
			"virtbgp status, drain and reload cannot reach it; use %s", cfg.Control.Socket, DefaultControlSocket))
	}
	if l := cfg.Status.Listen; l != "" && !loopbackListen(l) {
		warn = append(warn, fmt.Sprintf("status.listen %s is reachable beyond this host, and the status "+
			"endpoint has no authentication: listen on 127.0.0.1 or [::1]", l))
	}
	if l := cfg.API.Listen; l != "" && !loopbackListen(l) && cfg.API.TLS.Config == nil {
		warn = append(warn, fmt.Sprintf("api.listen %s is reachable beyond this host without api.tls: its "+
			"bearer tokens cross the network in clear; add api.tls, or listen on a management network only", l))
	}
	return warn
}

// loopbackListen reports whether the host:port listen binds only loopback
// addresses: a loopback IP, or the name localhost.
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
