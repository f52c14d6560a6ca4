package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/internal/safefile"
	"github.com/virtbgp/virtbgp/internal/yamlutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// Limits of the format beyond those in the defaults.
const (
	// MaxRestartTime is the largest graceful-restart time: the field in the
	// capability (RFC 4724) has 12 bits of seconds.
	MaxRestartTime = 4095 * time.Second
	// MaxLongLivedStaleTime is the largest long-lived stale time: the field
	// in the LLGR capability has 24 bits of seconds (RFC 9494).
	MaxLongLivedStaleTime = (1<<24 - 1) * time.Second
	// MaxHoldTime is the largest hold time: a 16-bit count of seconds.
	MaxHoldTime = 65535 * time.Second
	// MinHoldTime is the smallest hold time other than 0 (RFC 4271).
	MinHoldTime = 3 * time.Second
	// MinStandbyPrepend and MaxStandbyPrepend bound policy.standby-prepend.
	// The source of a migration depreferences its route by one prepend
	// during the switch-over, and that must stay better than the
	// destination's standby route, so the standby needs at least two.
	MinStandbyPrepend = 2
	MaxStandbyPrepend = 16
	// MaxPasswordLen is the longest TCP MD5 password, in bytes (the Linux
	// TCP_MD5SIG_MAXKEYLEN).
	MaxPasswordLen = 80
)

// Version is the format version this package reads.
const Version = 1

// MaxFileBytes is the biggest config file Load reads.
const MaxFileBytes = 1 << 20

// maxPasswordFile bounds how much of a password file is read.
const maxPasswordFile = 4096

// Load reads and validates the configuration file at path. Relative paths in
// the file (mapping.path, password-file) are resolved against the directory
// of path. On failure the error is a [fileerr.ErrorList] with every problem
// found, except when the file itself cannot be read.
//
// Only a regular file of at most MaxFileBytes is read: a FIFO or a device
// at path is an error, not a hang.
func Load(path string) (*Config, error) {
	data, err := safefile.ReadFile(path, MaxFileBytes)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates the configuration in data, read from file: file names the
// source in messages, becomes Config.File, and its directory is the base of
// relative paths. Password files are read. On failure the error is a sorted
// [fileerr.ErrorList] with every problem found.
func Parse(file string, data []byte) (*Config, error) {
	return parse(file, data, readPasswordFile)
}

// parse is Parse with the password-file reader as a parameter, for tests.
func parse(file string, data []byte, readPassword func(path string) (string, error)) (*Config, error) {
	l := &loader{
		r:            &yamlutil.Reader{File: file},
		dir:          filepath.Dir(file),
		readPassword: readPassword,
	}
	n := l.r.Parse(data)
	if n == nil && len(l.r.Errs) > 0 {
		return nil, l.r.Err() // a syntax error: nothing more to say
	}
	cfg := l.config(n)
	if err := l.r.Err(); err != nil {
		return nil, err
	}
	cfg.File = file
	for _, w := range hostWarnings(cfg) {
		l.warns = append(l.warns, fileerr.Error{File: file, Msg: w})
	}
	l.warns.Sort()
	cfg.Warnings = l.warns
	return cfg, nil
}

// loader holds the state of one Parse.
type loader struct {
	r            *yamlutil.Reader
	dir          string // base of relative paths
	readPassword func(path string) (string, error)
	warns        fileerr.ErrorList
}

// warnf records a warning at node n: valid, but probably wrong or unsafe.
func (l *loader) warnf(n *yaml.Node, format string, args ...any) {
	l.warns = append(l.warns, fileerr.Error{File: l.r.File, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// lineNode stands for a line in messages that are not about one node.
func lineNode(line int) *yaml.Node { return &yaml.Node{Line: line} }

// required reports, at line, every key of keys that the mapping n lacks. It
// does nothing when n is not a mapping (that is reported already).
func (l *loader) required(n *yaml.Node, what string, line int, keys ...string) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
next:
	for _, k := range keys {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Kind == yaml.ScalarNode && n.Content[i].Value == k {
				continue next
			}
		}
		l.r.Errorf(lineNode(line), "%s: missing required key %q", what, k)
	}
}

// config walks the top-level node (nil for an empty document).
func (l *loader) config(n *yaml.Node) *Config {
	cfg := &Config{
		Libvirt: Libvirt{URI: DefaultLibvirtURI},
		BGP: BGP{GracefulRestart: GracefulRestart{
			Enabled:            true,
			RestartTime:        DefaultRestartTime,
			LongLivedStaleTime: DefaultLongLivedStaleTime,
			Notification:       true,
		}},
		Policy: Policy{
			Paused:         PausedWithdraw,
			StandbyPrepend: DefaultStandbyPrepend,
		},
		ResyncInterval: DefaultResyncInterval,
		Mapping: Mapping{Watch: true, MaxBytes: mapping.DefaultMaxBytes,
			MaxWithdrawPercent: DefaultMaxWithdrawPercent, WithdrawConfirmAfter: DefaultWithdrawConfirmAfter},
		StateDir: DefaultStateDir,
		Control:  Control{Socket: DefaultControlSocket},
		Drain:    Drain{GracefulShutdownTime: DefaultDrainTime},
		Routes:   mapping.DefaultLimits,
		API:      API{WriteRate: DefaultWriteRate},
	}
	if n == nil {
		n = &yaml.Node{Kind: yaml.MappingNode, Line: 1}
	}
	l.r.Map(n, "top level",
		yamlutil.Field{Key: "version", Do: func(_, v *yaml.Node) { l.version(v) }},
		yamlutil.Field{Key: "libvirt", Do: func(k, v *yaml.Node) { l.libvirt(k, v, &cfg.Libvirt) }},
		yamlutil.Field{Key: "bgp", Do: func(k, v *yaml.Node) { l.bgp(k, v, &cfg.BGP) }},
		yamlutil.Field{Key: "mapping", Do: func(k, v *yaml.Node) { l.mapping(k, v, &cfg.Mapping) }},
		yamlutil.Field{Key: "status", Do: func(k, v *yaml.Node) { l.status(k, v, &cfg.Status) }},
		yamlutil.Field{Key: "routes", Do: func(k, v *yaml.Node) { l.routes(k, v, &cfg.Routes) }},
		yamlutil.Field{Key: "policy", Do: func(k, v *yaml.Node) { l.policy(k, v, &cfg.Policy) }},
		yamlutil.Field{Key: "resync-interval", Do: func(_, v *yaml.Node) {
			if d, ok := l.duration(v, "resync-interval", `0 (disabled) or a duration of at least 1s like "5m"`,
				func(d time.Duration) bool { return d == 0 || d >= time.Second }); ok {
				cfg.ResyncInterval = d
			}
		}},
		yamlutil.Field{Key: "state-dir", Do: func(_, v *yaml.Node) {
			if s, ok := l.nonEmptyPath(v, "state-dir"); ok {
				cfg.StateDir = s
			}
		}},
		yamlutil.Field{Key: "control", Do: func(_, v *yaml.Node) {
			l.r.Map(v, "control", yamlutil.Field{Key: "socket", Do: func(_, v *yaml.Node) {
				if s, ok := l.nonEmptyPath(v, "control.socket"); ok {
					cfg.Control.Socket = s
				}
			}}, yamlutil.Field{Key: "read-group", Do: func(_, v *yaml.Node) {
				s, ok := l.r.String(v, "control.read-group")
				if !ok || s == "" {
					return
				}
				g, err := user.LookupGroup(s)
				if err != nil {
					l.r.Errorf(v, "control.read-group: %v", err)
					return
				}
				gid, err := strconv.ParseUint(g.Gid, 10, 32)
				if err != nil {
					l.r.Errorf(v, "control.read-group: group %q has gid %q", s, g.Gid)
					return
				}
				cfg.Control.ReadGroup, cfg.Control.ReadGID = s, uint32(gid)
			}})
		}},
		yamlutil.Field{Key: "api", Do: func(k, v *yaml.Node) { l.api(k, v, &cfg.API) }},
		yamlutil.Field{Key: "drain", Do: func(_, v *yaml.Node) {
			l.r.Map(v, "drain", yamlutil.Field{Key: "graceful-shutdown-time", Do: func(_, v *yaml.Node) {
				if d, ok := l.duration(v, "drain.graceful-shutdown-time", `a duration from 0 to 1h like "60s"`,
					func(d time.Duration) bool { return d >= 0 && d <= time.Hour }); ok {
					cfg.Drain.GracefulShutdownTime = d
				}
			}})
		}},
	)
	l.required(n, "top level", 1, "version", "bgp", "mapping")
	l.sourcesInLimits(n, cfg)
	return cfg
}

func (l *loader) version(v *yaml.Node) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
		if n, err := strconv.ParseUint(strings.ReplaceAll(v.Value, "_", ""), 0, 64); err == nil && n == Version {
			return
		}
	}
	l.r.Errorf(v, "version: unsupported version %s (this virtbgp reads version %d)", yamlutil.Describe(v), Version)
}

func (l *loader) libvirt(_, v *yaml.Node, lv *Libvirt) {
	l.r.Map(v, "libvirt",
		yamlutil.Field{Key: "uri", Do: func(_, v *yaml.Node) {
			s, ok := l.r.String(v, "libvirt.uri")
			if !ok {
				return
			}
			if u, err := url.Parse(s); err != nil || u.Scheme == "" {
				l.r.Errorf(v, "libvirt.uri: want a libvirt URI like %q, got %s", DefaultLibvirtURI, yamlutil.Describe(v))
				return
			}
			lv.URI = s
		}},
	)
}

// peerNodes remembers where a peer's keys are, for the checks made after the
// whole bgp section is read.
type peerNodes struct {
	what      string     // "bgp.peers[i]"
	address   *yaml.Node // nil when missing or invalid
	iface     *yaml.Node // interface; nil when missing or invalid
	multihop  *yaml.Node // multihop-ttl; nil when missing or invalid
	passive   *yaml.Node // nil unless passive: true
	keepalive *yaml.Node // nil when omitted or invalid
	holdOK    bool       // hold-time is omitted or valid
	localAddr *yaml.Node // nil when omitted or invalid
}

func (l *loader) bgp(k, v *yaml.Node, b *BGP) {
	var nodes []peerNodes
	l.r.Map(v, "bgp",
		yamlutil.Field{Key: "asn", Do: func(_, v *yaml.Node) {
			if asn, ok := l.asn(v, "bgp.asn"); ok {
				b.ASN = asn
			}
		}},
		yamlutil.Field{Key: "router-id", Do: func(_, v *yaml.Node) {
			a, ok := l.r.Addr(v, "bgp.router-id")
			if !ok {
				return
			}
			if !a.Is4() || a.IsUnspecified() {
				l.r.Errorf(v, "bgp.router-id: want an IPv4 address other than 0.0.0.0, got %s", yamlutil.Describe(v))
				return
			}
			if classE := netip.MustParsePrefix("240.0.0.0/4"); a.IsMulticast() || classE.Contains(a) {
				l.r.Errorf(v, "bgp.router-id: %s is a multicast, broadcast or reserved (240.0.0.0/4) address: want a unicast IPv4 address of this host", a)
				return
			}
			b.RouterID = a
		}},
		yamlutil.Field{Key: "listen-port", Do: func(_, v *yaml.Node) {
			if p, ok := l.r.Uint(v, "bgp.listen-port", 0, 65535); ok {
				b.ListenPort = uint16(p)
			}
		}},
		yamlutil.Field{Key: "graceful-restart", Do: func(_, v *yaml.Node) {
			l.gracefulRestart(v, &b.GracefulRestart)
		}},
		yamlutil.Field{Key: "peers", Do: func(_, v *yaml.Node) {
			if l.r.Seq(v, "bgp.peers") == nil {
				return // not a list
			}
			for i, it := range v.Content {
				if it.Kind == yaml.AliasNode {
					continue // reported by Seq; the index still counts it
				}
				p, pn := l.peer(it, fmt.Sprintf("bgp.peers[%d]", i))
				b.Peers = append(b.Peers, p)
				nodes = append(nodes, pn)
			}
		}},
	)
	l.required(v, "bgp", k.Line, "asn", "router-id")

	// Checks across keys, now that everything is read.
	first := map[netip.Addr]int{} // address -> index of the first peer with it
	firstIf := map[string]int{}   // interface -> index of the first peer with it
	for i, pn := range nodes {
		p := &b.Peers[i]
		if pn.iface != nil {
			if j, dup := firstIf[p.Interface]; dup {
				l.r.Errorf(pn.iface, "%s.interface: %s is already the interface of %s (line %d)",
					pn.what, p.Interface, nodes[j].what, nodes[j].iface.Line)
			} else {
				firstIf[p.Interface] = i
			}
		}
		if pn.address != nil {
			if j, dup := first[p.Address]; dup {
				l.r.Errorf(pn.address, "%s.address: %s is already the address of %s (line %d)",
					pn.what, p.Address, nodes[j].what, nodes[j].address.Line)
			} else {
				first[p.Address] = i
			}
		}
		if pn.address != nil && pn.localAddr != nil && p.Address.Is4() != p.LocalAddress.Is4() {
			l.r.Errorf(pn.localAddr, "%s.local-address: %s is %s but the peer address %s is %s",
				pn.what, p.LocalAddress, family(p.LocalAddress), p.Address, family(p.Address))
		}
		if pn.keepalive != nil && pn.holdOK && p.HoldTime != 0 && (p.Keepalive == 0 || p.Keepalive >= p.HoldTime) {
			l.r.Errorf(pn.keepalive, "%s.keepalive: want at least 1s and less than hold-time (%s), got %s",
				pn.what, p.HoldTime, yamlutil.Describe(pn.keepalive))
		}
		if pn.keepalive == nil {
			p.Keepalive = (p.HoldTime / 3).Truncate(time.Second)
		}
		if pn.address != nil {
			for _, f := range p.Families {
				override := p.NextHopIPv4
				if f == FamilyIPv6 {
					override = p.NextHopIPv6
				}
				if (f == FamilyIPv4) != p.Address.Is4() && !override.IsValid() {
					l.warnf(pn.address, "%s: the session is %s but carries %s: routes with next hop self get the %s address of the interface facing the peer, as found on the host (virtbgp check there shows it; with none they are not sent), unless next-hop-%s is set",
						pn.what, family(p.Address), f, f, f)
				}
			}
		}
		if pn.passive != nil && b.ListenPort == 0 {
			l.r.Errorf(pn.passive, "%s.passive: a passive peer needs bgp.listen-port (without it virtbgp does not accept sessions)", pn.what)
		}
	}
}

// family names the address family of a for messages.
func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func (l *loader) gracefulRestart(v *yaml.Node, gr *GracefulRestart) {
	l.r.Map(v, "bgp.graceful-restart",
		yamlutil.Field{Key: "enabled", Do: func(_, v *yaml.Node) {
			if e, ok := l.r.Bool(v, "bgp.graceful-restart.enabled"); ok {
				gr.Enabled = e
			}
		}},
		yamlutil.Field{Key: "restart-time", Do: func(_, v *yaml.Node) {
			if d, ok := l.duration(v, "bgp.graceful-restart.restart-time",
				`a whole number of seconds from 1s to 4095s like "1s"`,
				func(d time.Duration) bool { return wholeSeconds(d) && d >= time.Second && d <= MaxRestartTime }); ok {
				gr.RestartTime = d
			}
		}},
		yamlutil.Field{Key: "long-lived-stale-time", Do: func(_, v *yaml.Node) {
			if d, ok := l.duration(v, "bgp.graceful-restart.long-lived-stale-time",
				`a whole number of seconds from 0s (off) to 16777215s like "3600s"`,
				func(d time.Duration) bool { return wholeSeconds(d) && d >= 0 && d <= MaxLongLivedStaleTime }); ok {
				gr.LongLivedStaleTime = d
			}
		}},
		yamlutil.Field{Key: "notification", Do: func(_, v *yaml.Node) {
			if b, ok := l.r.Bool(v, "bgp.graceful-restart.notification"); ok {
				gr.Notification = b
			}
		}},
	)
}

// unicast reports whether a can be the address of a BGP session end: not
// unspecified, multicast, broadcast or an IPv4-mapped IPv6 address.
func unicast(a netip.Addr) bool {
	return !a.IsUnspecified() && !a.IsMulticast() && !a.Is4In6() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// peer reads one item of bgp.peers.
func (l *loader) peer(n *yaml.Node, what string) (Peer, peerNodes) {
	p := Peer{
		Port:               DefaultPeerPort,
		HoldTime:           DefaultHoldTime,
		ReceiveLimit:       DefaultReceiveLimit,
		ReceiveLimitAction: ReceiveWarn,
	}
	pn := peerNodes{what: what, holdOK: true}
	var pwKey *yaml.Node // the first of password and password-file
	var nh4, nh6 *yaml.Node
	addr := func(v *yaml.Node, key string) (netip.Addr, bool) {
		if a, err := netip.ParseAddr(v.Value); (key == "address" || key == "local-address") && v.Kind == yaml.ScalarNode && err == nil && a.IsLinkLocalUnicast() {
			l.r.Errorf(v, "%s.%s: %s is a link-local address: virtbgp does not support link-local (interface-scoped) sessions; use a global or unique-local address", what, key, yamlutil.Describe(v))
			return netip.Addr{}, false
		}
		a, ok := l.r.Addr(v, what+"."+key)
		if ok && !unicast(a) {
			l.r.Errorf(v, "%s.%s: want a unicast IP address, got %s", what, key, yamlutil.Describe(v))
			ok = false
		}
		return a, ok
	}
	// password checks that password and password-file are not both given.
	password := func(k *yaml.Node) bool {
		if pwKey != nil {
			l.r.Errorf(k, "%s: give either password or password-file, not both (%s at line %d)",
				what, pwKey.Value, pwKey.Line)
			return false
		}
		pwKey = k
		return true
	}
	l.r.Map(n, what,
		yamlutil.Field{Key: "address", Do: func(_, v *yaml.Node) {
			if a, ok := addr(v, "address"); ok {
				p.Address, pn.address = a, v
				if a.IsLoopback() {
					l.warnf(v, "%s.address: %s is a loopback address: the session is with this host itself, which only a test does", what, a)
				}
			}
		}},
		yamlutil.Field{Key: "interface", Do: func(_, v *yaml.Node) {
			s, ok := l.r.String(v, what+".interface")
			if !ok {
				return
			}
			if !validIfName(s) {
				l.r.Errorf(v, "%s.interface: want a network interface name (1 to 15 characters, no '/', ':', '%%' or white space), got %s", what, yamlutil.Describe(v))
				return
			}
			p.Interface, pn.iface = s, v
		}},
		yamlutil.Field{Key: "port", Do: func(_, v *yaml.Node) {
			if port, ok := l.r.Uint(v, what+".port", 1, 65535); ok {
				p.Port = uint16(port)
			}
		}},
		yamlutil.Field{Key: "asn", Do: func(_, v *yaml.Node) {
			if asn, ok := l.asn(v, what+".asn"); ok {
				p.ASN = asn
			}
		}},
		yamlutil.Field{Key: "password", Do: func(k, v *yaml.Node) {
			s, ok := l.r.String(v, what+".password")
			if !ok || !password(k) {
				return
			}
			if pw, ok := l.checkPassword(v, what+".password", s, ""); ok {
				p.Password = pw
				l.warnf(k, "%s.password: the password is in the config file, which is often world-readable and copied around: use password-file with a file of mode 0600", what)
			}
		}},
		yamlutil.Field{Key: "password-file", Do: func(k, v *yaml.Node) {
			s, ok := l.r.String(v, what+".password-file")
			if !ok || !password(k) {
				return
			}
			if s == "" {
				l.r.Errorf(v, "%s.password-file: want a file name, got %s", what, yamlutil.Describe(v))
				return
			}
			path := l.path(s)
			pw, err := l.readPassword(path)
			if err != nil {
				l.r.Errorf(v, "%s.password-file: %v", what, err)
				return
			}
			if pw, ok := l.checkPassword(v, what+".password-file", pw, " in "+path); ok {
				p.Password = pw
				if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o004 != 0 {
					l.warnf(v, "%s.password-file: %s is readable by every user (mode %04o): chmod 600 it", what, path, fi.Mode().Perm())
				}
			}
		}},
		yamlutil.Field{Key: "passive", Do: func(_, v *yaml.Node) {
			if b, ok := l.r.Bool(v, what+".passive"); ok {
				p.Passive = b
				if b {
					pn.passive = v
				}
			}
		}},
		yamlutil.Field{Key: "hold-time", Do: func(_, v *yaml.Node) {
			d, ok := l.duration(v, what+".hold-time",
				`0 or a whole number of seconds from 3s to 65535s like "9s"`,
				func(d time.Duration) bool {
					return d == 0 || wholeSeconds(d) && d >= MinHoldTime && d <= MaxHoldTime
				})
			if ok {
				p.HoldTime = d
				if d == 0 {
					l.warnf(v, "%s.hold-time: 0 cannot be proposed with GoBGP: virtbgp proposes 90s, and the session has no keepalives only if the peer proposes 0", what)
				}
			}
			pn.holdOK = ok
		}},
		yamlutil.Field{Key: "keepalive", Do: func(_, v *yaml.Node) {
			if d, ok := l.duration(v, what+".keepalive",
				`a whole number of seconds from 0s to 65534s like "3s"`,
				func(d time.Duration) bool { return wholeSeconds(d) && d >= 0 && d < MaxHoldTime }); ok {
				p.Keepalive, pn.keepalive = d, v
			}
		}},
		yamlutil.Field{Key: "multihop-ttl", Do: func(_, v *yaml.Node) {
			if ttl, ok := l.r.Uint(v, what+".multihop-ttl", 0, 255); ok {
				p.MultihopTTL = uint8(ttl)
				if ttl > 0 {
					pn.multihop = v
				}
			}
		}},
		yamlutil.Field{Key: "local-address", Do: func(_, v *yaml.Node) {
			if a, ok := addr(v, "local-address"); ok {
				p.LocalAddress, pn.localAddr = a, v
			}
		}},
		yamlutil.Field{Key: "families", Do: func(_, v *yaml.Node) {
			p.Families = l.families(v, what+".families")
		}},
		yamlutil.Field{Key: "receive-limit", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, what+".receive-limit", 0, 1<<32-1); ok {
				p.ReceiveLimit = uint32(n)
			}
		}},
		yamlutil.Field{Key: "receive-limit-action", Do: func(_, v *yaml.Node) {
			s, ok := l.r.String(v, what+".receive-limit-action")
			if !ok {
				return
			}
			switch a := ReceiveAction(s); a {
			case ReceiveWarn, ReceiveRestart:
				p.ReceiveLimitAction = a
			default:
				l.r.Errorf(v, "%s.receive-limit-action: want warn or restart, got %s", what, yamlutil.Describe(v))
			}
		}},
		yamlutil.Field{Key: "next-hop-ipv4", Do: func(_, v *yaml.Node) {
			if a, ok := addr(v, "next-hop-ipv4"); ok {
				if !a.Is4() {
					l.r.Errorf(v, "%s.next-hop-ipv4: want an IPv4 address, got %s", what, yamlutil.Describe(v))
					return
				}
				p.NextHopIPv4, nh4 = a, v
			}
		}},
		yamlutil.Field{Key: "next-hop-ipv6", Do: func(_, v *yaml.Node) {
			if a, ok := addr(v, "next-hop-ipv6"); ok {
				if a.Is4() || a.IsLinkLocalUnicast() {
					l.r.Errorf(v, "%s.next-hop-ipv6: want a global IPv6 address, got %s", what, yamlutil.Describe(v))
					return
				}
				p.NextHopIPv6, nh6 = a, v
			}
		}},
		yamlutil.Field{Key: "export", Do: func(_, v *yaml.Node) {
			p.Export = l.export(v, what+".export")
		}},
	)
	l.addressOrInterface(n, what, &p, &pn)
	l.required(n, what, n.Line, "asn")
	if p.Interface != "" {
		for _, nh := range []*yaml.Node{nh4, nh6} {
			if nh != nil {
				l.r.Errorf(nh, "%s: not for an interface peer (its routes of both families get the link-local address of %s as next hop, RFC 8950)", what+"."+keyOf(n, nh), p.Interface)
			}
		}
		p.NextHopIPv4, p.NextHopIPv6 = netip.Addr{}, netip.Addr{}
	}
	// The next hop overrides are for the family other than the session's:
	// on a session of its own family "self" is already right.
	if nh4 != nil && p.Address.IsValid() && p.Address.Is4() {
		l.r.Errorf(nh4, "%s.next-hop-ipv4: only for a session over IPv6 (the peer address %s is IPv4: its IPv4 routes already get this host's address)", what, p.Address)
	}
	if nh6 != nil && p.Address.IsValid() && !p.Address.Is4() {
		l.r.Errorf(nh6, "%s.next-hop-ipv6: only for a session over IPv4 (the peer address %s is IPv6: its IPv6 routes already get this host's address)", what, p.Address)
	}
	if p.Families == nil && p.Interface != "" {
		// Unnumbered: IPv4 routes go with the link-local IPv6 next hop.
		p.Families = []Family{FamilyIPv4, FamilyIPv6}
	}
	if p.Families == nil {
		// The session's own family: next hop "self" of the other family
		// would be the session's address, unusable as a next hop there.
		p.Families = []Family{FamilyIPv4}
		if p.Address.IsValid() && !p.Address.Is4() {
			p.Families = []Family{FamilyIPv6}
		}
	}
	return p, pn
}

// addressOrInterface checks that a peer has exactly one of address and
// interface, and no key an interface peer cannot use.
func (l *loader) addressOrInterface(n *yaml.Node, what string, p *Peer, pn *peerNodes) {
	var addrKey, ifKey *yaml.Node
	for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case "address":
			addrKey = n.Content[i]
		case "interface":
			ifKey = n.Content[i]
		}
	}
	switch {
	case addrKey == nil && ifKey == nil:
		if n != nil && n.Kind == yaml.MappingNode {
			l.r.Errorf(lineNode(n.Line), "%s: missing required key \"address\" (or \"interface\" for BGP unnumbered)", what)
		}
		return
	case addrKey != nil && ifKey != nil:
		l.r.Errorf(ifKey, "%s: give either address or interface, not both (address at line %d)", what, addrKey.Line)
		return
	case ifKey == nil:
		return
	}
	// An unnumbered session is to the link-local neighbour of the
	// interface, over the interface's own link-local address.
	if pn.localAddr != nil {
		l.r.Errorf(pn.localAddr, "%s.local-address: not for an interface peer (the session uses the link-local address of %s)", what, p.Interface)
		p.LocalAddress = netip.Addr{}
		pn.localAddr = nil
	}
	if pn.multihop != nil {
		l.r.Errorf(pn.multihop, "%s.multihop-ttl: not for an interface peer (it is directly connected on %s)", what, p.Interface)
	}
}

// keyOf returns the key of value v in mapping n.
func keyOf(n, v *yaml.Node) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i+1] == v {
			return n.Content[i].Value
		}
	}
	return ""
}

// validIfName reports whether s can be a Linux network interface name.
func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r == '/' || r == ':' || r == '%' || r <= ' ' || r == 0x7f || r > 0x7e {
			return false
		}
	}
	return true
}

// MaxExportPrepend is the most bgp.peers[i].export.as-path-prepend accepts.
const MaxExportPrepend = 10

// export reads a peer's export policy.
func (l *loader) export(n *yaml.Node, what string) PeerExport {
	var e PeerExport
	l.r.Map(n, what,
		yamlutil.Field{Key: "communities", Do: func(_, v *yaml.Node) {
			e.Communities = append([]uint32{}, listOf(l, v, what+".communities", mapping.ParseCommunity)...)
			slices.Sort(e.Communities)
			e.Communities = slices.Compact(e.Communities)
		}},
		yamlutil.Field{Key: "large-communities", Do: func(_, v *yaml.Node) {
			e.LargeCommunities = append([]mapping.LargeCommunity{}, listOf(l, v, what+".large-communities", mapping.ParseLargeCommunity)...)
			slices.SortFunc(e.LargeCommunities, func(a, b mapping.LargeCommunity) int {
				return cmp.Or(cmp.Compare(a.GlobalAdmin, b.GlobalAdmin), cmp.Compare(a.LocalData1, b.LocalData1), cmp.Compare(a.LocalData2, b.LocalData2))
			})
			e.LargeCommunities = slices.Compact(e.LargeCommunities)
		}},
		yamlutil.Field{Key: "as-path-prepend", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, what+".as-path-prepend", 0, MaxExportPrepend); ok {
				e.ASPathPrepend = uint8(n)
			}
		}},
		yamlutil.Field{Key: "med", Do: func(_, v *yaml.Node) {
			if m, ok := l.r.Uint32(v, what+".med", 0); ok {
				e.MED = &m
			}
		}},
		yamlutil.Field{Key: "families", Do: func(_, v *yaml.Node) {
			e.Families = l.families(v, what+".families")
		}},
		yamlutil.Field{Key: "prefixes", Do: func(_, v *yaml.Node) {
			items := l.r.Seq(v, what+".prefixes")
			if items == nil {
				return
			}
			if len(v.Content) == 0 {
				l.r.Errorf(v, "%s.prefixes: want at least one prefix (leave the key out to send every route), got an empty list", what)
				return
			}
			e.Prefixes = []netip.Prefix{}
			for _, it := range items {
				s, ok := l.r.String(it, what+".prefixes")
				if !ok {
					continue
				}
				pfx, err := netip.ParsePrefix(s)
				if err != nil || pfx.Addr().Zone() != "" || pfx.Addr().Is4In6() {
					l.r.Errorf(it, "%s.prefixes: want a prefix like 192.0.2.0/24 or 2001:db8::/32, got %s", what, yamlutil.Describe(it))
					continue
				}
				if pfx != pfx.Masked() {
					l.r.Errorf(it, "%s.prefixes: %s has host bits set (did you mean %s?)", what, pfx, pfx.Masked())
					continue
				}
				e.Prefixes = append(e.Prefixes, pfx)
			}
		}},
	)
	return e
}

// checkPassword checks a TCP MD5 password; where says where it came from.
func (l *loader) checkPassword(v *yaml.Node, what, pw, where string) (string, bool) {
	switch {
	case pw == "":
		l.r.Errorf(v, "%s: the password%s is empty", what, where)
		return "", false
	case len(pw) > MaxPasswordLen:
		l.r.Errorf(v, "%s: the password%s is longer than %d bytes (the TCP MD5 key limit)", what, where, MaxPasswordLen)
		return "", false
	case strings.ContainsAny(pw, "\r\n"):
		l.r.Errorf(v, "%s: the password%s has more than one line: want the password alone on one line", what, where)
		return "", false
	case strings.IndexFunc(pw, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0:
		l.r.Errorf(v, "%s: the password%s has a control character", what, where)
		return "", false
	}
	return pw, true
}

// families reads a peer's list of address families.
func (l *loader) families(v *yaml.Node, what string) []Family {
	items := l.r.Seq(v, what)
	if items == nil {
		return nil // not a list: reported
	}
	if len(items) == 0 && len(v.Content) == 0 {
		l.r.Errorf(v, "%s: want at least one of ipv4, ipv6, got an empty list", what)
		return nil
	}
	var fams []Family
	seen := map[Family]int{}
	for _, it := range items {
		s, ok := l.r.String(it, what)
		if !ok {
			continue
		}
		f := Family(s)
		if f != FamilyIPv4 && f != FamilyIPv6 {
			l.r.Errorf(it, "%s: want ipv4 or ipv6, got %s", what, yamlutil.Describe(it))
			continue
		}
		if line, dup := seen[f]; dup {
			l.r.Errorf(it, "%s: duplicate family %s (first at line %d)", what, f, line)
			continue
		}
		seen[f] = it.Line
		fams = append(fams, f)
	}
	return fams
}

func (l *loader) mapping(k, v *yaml.Node, m *Mapping) {
	l.r.Map(v, "mapping",
		yamlutil.Field{Key: "path", Do: func(_, v *yaml.Node) {
			s, ok := l.r.String(v, "mapping.path")
			if !ok {
				return
			}
			if s == "" {
				l.r.Errorf(v, "mapping.path: want a file or directory name, got %s", yamlutil.Describe(v))
				return
			}
			m.Path = l.path(s)
		}},
		yamlutil.Field{Key: "watch", Do: func(_, v *yaml.Node) {
			if b, ok := l.r.Bool(v, "mapping.watch"); ok {
				m.Watch = b
			}
		}},
		yamlutil.Field{Key: "max-bytes", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, "mapping.max-bytes", 1024, 1<<32); ok {
				m.MaxBytes = int64(n)
			}
		}},
		yamlutil.Field{Key: "max-withdraw-percent", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, "mapping.max-withdraw-percent", 0, 100); ok {
				m.MaxWithdrawPercent = int(n)
			}
		}},
		yamlutil.Field{Key: "withdraw-confirm-after", Do: func(_, v *yaml.Node) {
			if d, ok := l.duration(v, "mapping.withdraw-confirm-after", "a duration of 0 (never) or from 1s to 24h, like 10m",
				func(d time.Duration) bool { return d == 0 || (d >= time.Second && d <= 24*time.Hour) }); ok {
				m.WithdrawConfirmAfter = d
			}
		}},
		yamlutil.Field{Key: "metadata", Do: func(k, v *yaml.Node) { l.metadataSection(k, v, &m.Metadata) }},
		yamlutil.Field{Key: "nova", Do: func(k, v *yaml.Node) { l.novaSection(k, v, &m.Nova) }},
	)
	l.requireMappingSource(k, v, m)
}

// hostName matches what may stand as a host name in status.listen.
var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

func (l *loader) status(_, v *yaml.Node, st *Status) {
	l.r.Map(v, "status",
		yamlutil.Field{Key: "listen", Do: func(_, v *yaml.Node) {
			s, ok := l.r.String(v, "status.listen")
			if !ok {
				return
			}
			if s != "" && !validListen(s) {
				l.r.Errorf(v, `status.listen: want host:port like "127.0.0.1:9479" (port 1..65535), or "" to disable, got %s`,
					yamlutil.Describe(v))
				return
			}
			st.Listen = s // a non-loopback address is warned about (hostWarnings)
		}},
	)
}

// validListen reports whether s is a host:port to listen on: the host empty
// (every address), an IP address or a host name; the port a number.
func validListen(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	// A name, but not something like a mistyped IPv4 address.
	return host == "" || hostName.MatchString(host) && strings.Trim(host, "0123456789.") != ""
}

func (l *loader) policy(_, v *yaml.Node, p *Policy) {
	l.r.Map(v, "policy",
		yamlutil.Field{Key: "paused", Do: func(_, v *yaml.Node) {
			s, ok := l.r.String(v, "policy.paused")
			if !ok {
				return
			}
			switch pp := PausedPolicy(s); pp {
			case PausedWithdraw, PausedKeep:
				p.Paused = pp
			default:
				l.r.Errorf(v, "policy.paused: want withdraw or keep, got %s", yamlutil.Describe(v))
			}
		}},
		yamlutil.Field{Key: "standby-prepend", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, "policy.standby-prepend", MinStandbyPrepend, MaxStandbyPrepend); ok {
				p.StandbyPrepend = uint8(n)
			}
		}},
	)
}

// duration reads a Go duration ("90s", "5m"; a bare 0 is zero) that valid
// accepts; want describes the accepted values for the message.
func (l *loader) duration(v *yaml.Node, what, want string, valid func(time.Duration) bool) (time.Duration, bool) {
	if v.Kind == yaml.ScalarNode && (v.Tag == "!!str" || v.Tag == "!!int") {
		d, err := time.ParseDuration(v.Value)
		if v.Value == "0" {
			d, err = 0, nil
		}
		if err == nil && valid(d) {
			return d, true
		}
	}
	l.r.Errorf(v, "%s: want %s, got %s", what, want, yamlutil.Describe(v))
	return 0, false
}

// wholeSeconds reports whether d is a whole number of seconds.
func wholeSeconds(d time.Duration) bool { return d%time.Second == 0 }

// nonEmptyPath reads a path value, resolved against the file's directory.
func (l *loader) nonEmptyPath(v *yaml.Node, what string) (string, bool) {
	s, ok := l.r.String(v, what)
	if !ok {
		return "", false
	}
	if s == "" {
		l.r.Errorf(v, "%s: want a path, got %s", what, yamlutil.Describe(v))
		return "", false
	}
	return l.path(s), true
}

// path resolves a path from the file against the file's directory.
func (l *loader) path(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(l.dir, p)
}

// readPasswordFile reads a password file and trims the white space around
// the password. Only regular files are read (a FIFO or a device could block
// or never end), and only their beginning.
func readPasswordFile(path string) (string, error) {
	fail := func(err error) (string, error) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // without the "open" or "stat" and the path again
		}
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail(err)
	}
	if !fi.Mode().IsRegular() {
		return fail(errors.New("not a regular file"))
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPasswordFile))
	if err != nil {
		return fail(err)
	}
	return strings.TrimSpace(string(data)), nil
}
