package config

import (
	"gopkg.in/yaml.v3"

	"github.com/virtbgp/virtbgp/internal/yamlutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// Reserved AS numbers that are no AS's own: AS_TRANS stands for a 4-byte
// AS number in 2-byte fields (RFC 6793), 65535 and 4294967295 are reserved
// (RFC 7300).
const (
	ASTrans     = 23456
	asnLast16   = 65535
	asnLast32   = 4294967295
	asnReserved = "reserved (RFC 7300)"
)

// asn reads an AS number: 1..4294967294, not AS_TRANS nor 65535.
func (l *loader) asn(v *yaml.Node, what string) (uint32, bool) {
	asn, ok := l.r.Uint32(v, what, 1)
	if !ok {
		return 0, false
	}
	switch asn {
	case ASTrans:
		l.r.Errorf(v, "%s: %d is AS_TRANS (RFC 6793), which stands for a 4-byte AS number in old speakers' messages and is no AS's own", what, asn)
		return 0, false
	case asnLast16, asnLast32:
		l.r.Errorf(v, "%s: %d is %s, not usable as an AS number", what, asn, asnReserved)
		return 0, false
	}
	return asn, true
}

// routes reads the routes section: what any route of any source may be.
func (l *loader) routes(_, v *yaml.Node, lim *mapping.Limits) {
	const what = "routes"
	var nodes []*yaml.Node
	l.r.Map(v, what,
		yamlutil.Field{Key: "min-prefix-length", Do: func(_, v *yaml.Node) {
			l.minPrefixLength(v, what+".min-prefix-length", &lim.MinBits4, &lim.MinBits6)
		}},
		yamlutil.Field{Key: "allowed-prefixes", Do: func(_, v *yaml.Node) {
			lim.Pools, nodes = l.prefixList(v, what+".allowed-prefixes")
			a := mapping.Allow{Prefixes: lim.Pools}
			list, _ := a.Validate().(mapping.AllowErrorList)
			for _, e := range list {
				if e.Field == "Prefixes" && e.Index < len(nodes) {
					l.r.Errorf(nodes[e.Index], "%s.allowed-prefixes: %s", what, e.Msg)
				}
			}
		}},
	)
}

// sourcesInLimits checks that what the metadata sources and the API may
// claim stays within the routes section: their allowed prefixes inside its
// pools, their shortest prefixes not shorter than its minimum. The mapping
// files are checked against it when they are loaded (mapping.CheckLimits).
func (l *loader) sourcesInLimits(top *yaml.Node, cfg *Config) {
	at := func(path ...string) *yaml.Node {
		for len(path) > 0 {
			if n := child(top, path...); n != nil {
				return n
			}
			path = path[:len(path)-1]
		}
		return lineNode(1)
	}
	lim := &cfg.Routes
	check := func(what string, enabled bool, a mapping.Allow, path ...string) {
		if !enabled {
			return
		}
		n := at(path...)
		for _, p := range a.Prefixes {
			if !lim.InPools(p) {
				l.r.Errorf(n, "%s.allowed-prefixes: %s lies outside routes.allowed-prefixes %v, which every source must keep to", what, p, lim.Pools)
			}
		}
		for _, f := range []struct {
			key       string
			own, glob int
			hostBits  int
		}{{"ipv4", a.MinBits4, lim.MinBits4, 32}, {"ipv6", a.MinBits6, lim.MinBits6, 128}} {
			own := f.own
			if own == 0 {
				own = f.hostBits // host routes only
			}
			if own < f.glob {
				l.r.Errorf(n, "%s.min-prefix-length.%s: /%d is shorter than routes.min-prefix-length.%s (/%d), which every source must keep to",
					what, f.key, own, f.key, f.glob)
			}
		}
	}
	check("mapping.metadata", cfg.Mapping.Metadata.Enabled, cfg.Mapping.Metadata.Allow, "mapping", "metadata")
	check("mapping.nova", cfg.Mapping.Nova.Enabled, cfg.Mapping.Nova.Allow, "mapping", "nova")
	// The API's manual routes: an API that may claim nothing is off.
	check("api", len(cfg.API.Allow.Prefixes) > 0, cfg.API.Allow, "api")
}

// child returns the value node at the path of keys under n, or nil.
func child(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}
