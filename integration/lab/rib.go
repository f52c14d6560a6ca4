package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/virtbgp/virtbgp/mapping"
)

// Path is one BGP path a ToR has for a prefix.
type Path struct {
	Prefix netip.Prefix
	// Peer is the address of the session the path came over (filled in by
	// the lab's readers; parsers leave it to Source).
	Peer netip.Addr
	// Source is the router's name for where the path came from: BIRD's
	// protocol name (hvA4), FRR's peer ID (198.18.0.11).
	Source string
	// NextHop is the BGP next hop (for IPv6 the global one).
	NextHop netip.Addr
	// ASPath is the AS path, nearest AS first.
	ASPath []uint32
	// Origin is IGP, EGP or Incomplete (as the router spells it).
	Origin string
	// MED and LocalPref are nil when the path does not carry them.
	MED, LocalPref *uint32
	// Communities (sorted) and large communities (sorted).
	Communities      []uint32
	LargeCommunities []mapping.LargeCommunity
	// Best is true for the router's best path for the prefix.
	Best bool
}

// String renders a path in one line, for test failures.
func (p Path) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s via %s from %s", p.Prefix, p.NextHop, p.Source)
	if p.Peer.IsValid() {
		fmt.Fprintf(&b, " (%s)", p.Peer)
	}
	if p.Best {
		b.WriteString(" best")
	}
	fmt.Fprintf(&b, " as-path %v", p.ASPath)
	if p.MED != nil {
		fmt.Fprintf(&b, " med %d", *p.MED)
	}
	if p.LocalPref != nil {
		fmt.Fprintf(&b, " local-pref %d", *p.LocalPref)
	}
	if len(p.Communities) > 0 {
		cs := make([]string, len(p.Communities))
		for i, c := range p.Communities {
			cs[i] = mapping.FormatCommunity(c)
		}
		fmt.Fprintf(&b, " community %v", cs)
	}
	if len(p.LargeCommunities) > 0 {
		fmt.Fprintf(&b, " large-community %v", p.LargeCommunities)
	}
	return b.String()
}

// RIB is what a router has: every path, per prefix.
type RIB map[netip.Prefix][]Path

// Paths returns the paths for p.
func (r RIB) Paths(p netip.Prefix) []Path { return r[p] }

// Best returns the best path for p.
func (r RIB) Best(p netip.Prefix) (Path, bool) {
	for _, x := range r[p] {
		if x.Best {
			return x, true
		}
	}
	return Path{}, false
}

// NextHops returns the next hops of every path for p, sorted.
func (r RIB) NextHops(p netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, x := range r[p] {
		out = append(out, x.NextHop)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// String renders the RIB, one path a line, sorted by prefix.
func (r RIB) String() string {
	var pfx []netip.Prefix
	for p := range r {
		pfx = append(pfx, p)
	}
	slices.SortFunc(pfx, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	var b strings.Builder
	for _, p := range pfx {
		paths := slices.Clone(r[p])
		slices.SortFunc(paths, func(a, b Path) int { return a.NextHop.Compare(b.NextHop) })
		for _, x := range paths {
			b.WriteString(x.String())
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (r RIB) add(p Path) {
	slices.Sort(p.Communities)
	slices.SortFunc(p.LargeCommunities, func(a, b mapping.LargeCommunity) int {
		return strings.Compare(fmt.Sprintf("%010d%010d%010d", a.GlobalAdmin, a.LocalData1, a.LocalData2),
			fmt.Sprintf("%010d%010d%010d", b.GlobalAdmin, b.LocalData1, b.LocalData2))
	})
	r[p.Prefix] = append(r[p.Prefix], p)
}

func u32p(v uint32) *uint32 { return &v }

// ---------------------------------------------------------------- BIRD

var (
	// "192.0.2.50/32        unicast [hvA4 2025-11-21 06:01:41.123] * (100) [AS65011i]"
	// "                     unicast [hvB4 2025-11-21 06:01:41.456 from 198.18.0.12] (100) [AS65012i]"
	birdRouteLine = regexp.MustCompile(`^(\S+)?\s+(\S+)\s+\[(\S+)[^\]]*\]\s*(\*)?`)
	birdComm      = regexp.MustCompile(`\((\d+),\s*(\d+)\)`)
	birdLarge     = regexp.MustCompile(`\((\d+),\s*(\d+),\s*(\d+)\)`)
)

// ParseBIRDRoutes parses the output of "birdc show route all" (every table;
// "Table master4:" headers, a route line per path, then tab-indented
// attribute lines). Paths of non-BGP protocols are kept with what they have.
func ParseBIRDRoutes(out string) (RIB, error) {
	rib := RIB{}
	var (
		cur     *Path
		lastPfx netip.Prefix
	)
	flush := func() {
		if cur != nil {
			rib.add(*cur)
			cur = nil
		}
	}
	for n, line := range strings.Split(out, "\n") {
		switch {
		case strings.TrimSpace(line) == "", strings.HasPrefix(line, "BIRD "), strings.HasPrefix(line, "Table "):
			flush()
			continue
		case strings.HasPrefix(line, "\t"):
			if cur == nil {
				continue
			}
			if err := birdAttr(cur, strings.TrimSpace(line)); err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			continue
		}
		m := birdRouteLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: not a route: %q", n+1, line)
		}
		flush()
		if m[1] != "" {
			p, err := netip.ParsePrefix(m[1])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			lastPfx = p
		}
		if !lastPfx.IsValid() {
			return nil, fmt.Errorf("line %d: a path before any prefix", n+1)
		}
		cur = &Path{Prefix: lastPfx, Source: m[3], Best: m[4] == "*"}
	}
	flush()
	return rib, nil
}

// birdAttr applies one attribute line ("BGP.med: 10", "via 198.18.0.11 on
// br0") to p.
func birdAttr(p *Path, line string) error {
	if rest, ok := strings.CutPrefix(line, "via "); ok {
		if f := strings.Fields(rest); len(f) > 0 && !p.NextHop.IsValid() {
			if a, err := netip.ParseAddr(f[0]); err == nil {
				p.NextHop = a
			}
		}
		return nil
	}
	k, v, ok := strings.Cut(line, ":")
	if !ok {
		return nil
	}
	v = strings.TrimSpace(v)
	switch k {
	case "BGP.origin":
		p.Origin = v
	case "BGP.as_path":
		p.ASPath = nil
		for _, f := range strings.Fields(strings.NewReplacer("{", " ", "}", " ", "(", " ", ")", " ").Replace(v)) {
			a, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return fmt.Errorf("BGP.as_path %q: %w", v, err)
			}
			p.ASPath = append(p.ASPath, uint32(a))
		}
	case "BGP.next_hop":
		// "198.18.0.11", or "fd00:198:18::11 fe80::1" (global, link-local).
		if f := strings.Fields(v); len(f) > 0 {
			a, err := netip.ParseAddr(f[0])
			if err != nil {
				return fmt.Errorf("BGP.next_hop %q: %w", v, err)
			}
			p.NextHop = a
		}
	case "BGP.med", "BGP.local_pref":
		x, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("%s %q: %w", k, v, err)
		}
		if k == "BGP.med" {
			p.MED = u32p(uint32(x))
		} else {
			p.LocalPref = u32p(uint32(x))
		}
	case "BGP.community":
		for _, m := range birdComm.FindAllStringSubmatch(v, -1) {
			hi, _ := strconv.ParseUint(m[1], 10, 16)
			lo, _ := strconv.ParseUint(m[2], 10, 16)
			p.Communities = append(p.Communities, uint32(hi)<<16|uint32(lo))
		}
	case "BGP.large_community":
		for _, m := range birdLarge.FindAllStringSubmatch(v, -1) {
			a, _ := strconv.ParseUint(m[1], 10, 32)
			b, _ := strconv.ParseUint(m[2], 10, 32)
			c, _ := strconv.ParseUint(m[3], 10, 32)
			p.LargeCommunities = append(p.LargeCommunities, mapping.LargeCommunity{GlobalAdmin: uint32(a), LocalData1: uint32(b), LocalData2: uint32(c)})
		}
	}
	return nil
}

// ---------------------------------------------------------------- FRR

// frrPath is one path of "show bgp <afi> unicast json detail" (and of
// "show bgp <afi> unicast <prefix> json").
type frrPath struct {
	ASPath struct {
		Segments []struct {
			Type string   `json:"type"`
			List []uint32 `json:"list"`
		} `json:"segments"`
	} `json:"aspath"`
	Origin    string  `json:"origin"`
	MED       *uint32 `json:"metric"`
	LocalPref *uint32 `json:"locPrf"`
	Community *struct {
		List []string `json:"list"`
	} `json:"community"`
	LargeCommunity *struct {
		List []string `json:"list"`
	} `json:"largeCommunity"`
	Bestpath *struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
	Peer struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
}

// ParseFRRRoutes parses the JSON of vtysh "show bgp ipv4|ipv6 unicast json
// detail", one document or several in a row (one vtysh call with several
// -c). FRR 8.4 lists each prefix as an array whose first element is a
// header ({"prefix", "version"}) and whose other elements are the paths;
// later FRR releases give {"prefix", "paths": [...]} per prefix, which is
// also what "show bgp <afi> unicast <prefix> json" prints at the top level.
// Both forms are accepted.
func ParseFRRRoutes(out []byte) (RIB, error) {
	rib := RIB{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var doc struct {
			Routes map[string]json.RawMessage `json:"routes"`
			Prefix string                     `json:"prefix"`
			Paths  []frrPath                  `json:"paths"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return rib, nil
		}
		if err != nil {
			return nil, fmt.Errorf("frr json: %w", err)
		}
		if doc.Prefix != "" {
			if err := addFRRPaths(rib, doc.Prefix, doc.Paths); err != nil {
				return nil, err
			}
		}
		for k, raw := range doc.Routes {
			var paths []frrPath
			var e struct {
				Paths []frrPath `json:"paths"`
			}
			if err := json.Unmarshal(raw, &paths); err != nil {
				if err2 := json.Unmarshal(raw, &e); err2 != nil {
					return nil, fmt.Errorf("frr json: route %s: %w", k, err)
				}
				paths = e.Paths
			}
			if err := addFRRPaths(rib, k, paths); err != nil {
				return nil, err
			}
		}
	}
}

func addFRRPaths(rib RIB, prefix string, paths []frrPath) error {
	pfx, err := netip.ParsePrefix(prefix)
	if err != nil {
		return fmt.Errorf("frr json: %w", err)
	}
	for _, fp := range paths {
		if fp.Peer.PeerID == "" {
			continue // FRR 8.4's header element
		}
		p := Path{Prefix: pfx, Source: fp.Peer.PeerID, Origin: fp.Origin, MED: fp.MED, LocalPref: fp.LocalPref,
			Best: fp.Bestpath != nil && fp.Bestpath.Overall}
		if a, err := netip.ParseAddr(fp.Peer.PeerID); err == nil {
			p.Peer = a
		}
		for _, s := range fp.ASPath.Segments {
			p.ASPath = append(p.ASPath, s.List...)
		}
		// The global next hop; a link-local one only if there is no other.
		for _, nh := range fp.Nexthops {
			a, err := netip.ParseAddr(nh.IP)
			if err != nil {
				continue
			}
			if !p.NextHop.IsValid() || (p.NextHop.IsLinkLocalUnicast() && !a.IsLinkLocalUnicast()) {
				p.NextHop = a
			}
		}
		if fp.Community != nil {
			for _, c := range fp.Community.List {
				v, err := parseFRRCommunity(c)
				if err != nil {
					return fmt.Errorf("frr json: route %s: %w", prefix, err)
				}
				p.Communities = append(p.Communities, v)
			}
		}
		if fp.LargeCommunity != nil {
			for _, c := range fp.LargeCommunity.List {
				var a, b, d uint32
				if _, err := fmt.Sscanf(c, "%d:%d:%d", &a, &b, &d); err != nil {
					return fmt.Errorf("frr json: route %s: large community %q: %w", prefix, c, err)
				}
				p.LargeCommunities = append(p.LargeCommunities, mapping.LargeCommunity{GlobalAdmin: a, LocalData1: b, LocalData2: d})
			}
		}
		rib.add(p)
	}
	return nil
}

// FRR's names of well-known communities, in JSON and in its CLI.
var frrWellKnown = map[string]uint32{
	"gracefulShutdown": mapping.CommunityGracefulShutdown, "graceful-shutdown": mapping.CommunityGracefulShutdown,
	"blackhole": mapping.CommunityBlackhole,
	"noExport":  mapping.CommunityNoExport, "no-export": mapping.CommunityNoExport,
	"noAdvertise": mapping.CommunityNoAdvertise, "no-advertise": mapping.CommunityNoAdvertise,
	"localAs": 0xFFFFFF03, "local-AS": 0xFFFFFF03,
	"noPeer": 0xFFFFFF04, "no-peer": 0xFFFFFF04,
	"acceptOwn": 0xFFFF0001, "accept-own": 0xFFFF0001,
	"llgrStale": 0xFFFF0006, "llgr-stale": 0xFFFF0006,
	"noLlgr": 0xFFFF0007, "no-llgr": 0xFFFF0007,
}

func parseFRRCommunity(s string) (uint32, error) {
	if v, ok := frrWellKnown[s]; ok {
		return v, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 == nil && err2 == nil {
			return uint32(h)<<16 | uint32(l), nil
		}
	}
	return 0, fmt.Errorf("community %q", s)
}
