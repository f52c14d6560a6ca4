package config

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/virtbgp/virtbgp/internal/yamlutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// trustNodes remembers where the keys of an Allow are, to report the
// problems Allow.Validate finds at their lines.
type trustNodes struct {
	prefixes, nextHops []*yaml.Node // the items, by index
	minBits            *yaml.Node
	prefixesKey        *yaml.Node // nil when allowed-prefixes is missing
}

// allowFields are the keys of a source's trust rules, read into a and
// tn: allowed-prefixes, allowed-next-hops and, with minLength,
// min-prefix-length. checkAllow checks them once the section is read.
func (l *loader) allowFields(what string, a *mapping.Allow, tn *trustNodes, minLength bool) []yamlutil.Field {
	fields := []yamlutil.Field{{Key: "allowed-prefixes", Do: func(k, v *yaml.Node) {
		tn.prefixesKey = k
		a.Prefixes, tn.prefixes = l.prefixList(v, what+".allowed-prefixes")
	}}}
	if minLength {
		fields = append(fields, yamlutil.Field{Key: "min-prefix-length", Do: func(_, v *yaml.Node) {
			tn.minBits = v
			l.minPrefixLength(v, what+".min-prefix-length", &a.MinBits4, &a.MinBits6)
		}})
	}
	return append(fields, yamlutil.Field{Key: "allowed-next-hops", Do: func(_, v *yaml.Node) {
		a.NextHops, tn.nextHops = l.prefixList(v, what+".allowed-next-hops")
	}})
}

// metadataSection reads mapping.metadata.
func (l *loader) metadataSection(k, v *yaml.Node, m *Metadata) {
	const what = "mapping.metadata"
	var tn trustNodes
	fields := []yamlutil.Field{{Key: "enabled", Do: func(_, v *yaml.Node) {
		if b, ok := l.r.Bool(v, what+".enabled"); ok {
			m.Enabled = b
		}
	}}}
	fields = append(fields, l.allowFields(what, &m.Allow, &tn, true)...)
	l.r.Map(v, what, append(fields,
		yamlutil.Field{Key: "defaults", Do: func(_, v *yaml.Node) {
			l.attributes(v, what+".defaults", &m.Defaults)
		}},
		yamlutil.Field{Key: "health", Do: func(_, v *yaml.Node) { l.metadataHealth(v, what+".health", &m.Health) }},
	)...)
	l.checkAllow(k, what, m.Enabled, &m.Allow, &tn)
}

// metadataHealth reads mapping.metadata.health: what the element's health
// checks may be, and the operator's default checks.
func (l *loader) metadataHealth(v *yaml.Node, what string, t *mapping.HealthTrust) {
	l.r.Map(v, what,
		yamlutil.Field{Key: "types", Do: func(_, v *yaml.Node) {
			items := l.r.Seq(v, what+".types")
			if v.Kind == yaml.SequenceNode && len(items) == 0 {
				l.r.Errorf(v, "%s.types: want at least one of agent, tcp, http (to allow no checks, leave health out of the element)", what)
			}
			for _, it := range items {
				s, ok := l.r.String(it, what+".types")
				if !ok {
					continue
				}
				switch k := mapping.CheckKind(s); k {
				case mapping.CheckAgent, mapping.CheckTCP, mapping.CheckHTTP:
					t.Types = append(t.Types, k)
				case mapping.CheckExec:
					l.r.Errorf(it, "%s.types: exec checks cannot be allowed from metadata (they would run a command on the hypervisor as root; give them in the mapping file)", what)
				default:
					l.r.Errorf(it, "%s.types: want agent, tcp or http, got %s", what, yamlutil.Describe(it))
				}
			}
		}},
		yamlutil.Field{Key: "min-interval", Do: func(_, v *yaml.Node) {
			s, ok := l.r.String(v, what+".min-interval")
			if !ok {
				return
			}
			d, err := time.ParseDuration(s)
			if err != nil || d < 100*time.Millisecond || d > time.Hour {
				l.r.Errorf(v, "%s.min-interval: want a duration from 100ms to 1h like \"1s\", got %s", what, yamlutil.Describe(v))
				return
			}
			t.MinInterval = d
		}},
		yamlutil.Field{Key: "max-checks", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, what+".max-checks", 1, mapping.MaxMetadataMaxChecks); ok {
				t.MaxChecks = int(n)
			}
		}},
		yamlutil.Field{Key: "defaults", Do: func(k, v *yaml.Node) {
			t.Defaults = l.health(k, v, what+".defaults")
		}},
	)
}

// health reads a health block of the config (the vocabulary of a mapping
// file's health key), reporting its problems at their lines.
func (l *loader) health(k, v *yaml.Node, what string) *mapping.Health {
	h, errs := mapping.ParseHealthYAML(l.r.File, what, k, v)
	l.r.Errs = append(l.r.Errs, errs...)
	return h
}

// novaSection reads mapping.nova.
func (l *loader) novaSection(k, v *yaml.Node, n *Nova) {
	const what = "mapping.nova"
	var tn trustNodes
	n.Options.Types = []string{mapping.NovaFixed}
	fields := []yamlutil.Field{
		{Key: "enabled", Do: func(_, v *yaml.Node) {
			if b, ok := l.r.Bool(v, what+".enabled"); ok {
				n.Enabled = b
			}
		}},
		{Key: "ip-types", Do: func(_, v *yaml.Node) {
			n.Options.Types = l.novaTypes(v, what+".ip-types")
		}},
	}
	fields = append(fields, l.allowFields(what, &n.Allow, &tn, false)...)
	l.r.Map(v, what, append(fields,
		yamlutil.Field{Key: "attributes", Do: func(_, v *yaml.Node) {
			l.attributes(v, what+".attributes", &n.Options.Attributes)
		}},
		yamlutil.Field{Key: "health", Do: func(k, v *yaml.Node) {
			n.Options.Health = l.health(k, v, what+".health")
		}},
	)...)
	l.checkAllow(k, what, n.Enabled, &n.Allow, &tn)
}

// checkAllow reports the problems of a, each at the line of the item or key
// it is about; an enabled source needs allowed prefixes.
func (l *loader) checkAllow(k *yaml.Node, what string, enabled bool, a *mapping.Allow, tn *trustNodes) {
	if enabled && tn.prefixesKey == nil {
		l.r.Errorf(k, "%s: missing required key \"allowed-prefixes\" (an enabled source may claim nothing outside them)", what)
	}
	err := a.Validate()
	var list mapping.AllowErrorList
	if !errors.As(err, &list) {
		return
	}
	for _, e := range list {
		at := k
		key := ""
		switch e.Field {
		case "Prefixes":
			key = "allowed-prefixes"
			if e.Index < len(tn.prefixes) {
				at = tn.prefixes[e.Index]
			}
		case "NextHops":
			key = "allowed-next-hops"
			if e.Index < len(tn.nextHops) {
				at = tn.nextHops[e.Index]
			}
		default:
			key = "min-prefix-length"
			if tn.minBits != nil {
				at = tn.minBits
			}
		}
		l.r.Errorf(at, "%s.%s: %s", what, key, e.Msg)
	}
}

// prefixList reads a list of prefixes in CIDR notation; the nodes are the
// items of the prefixes, by index, for later messages.
func (l *loader) prefixList(v *yaml.Node, what string) ([]netip.Prefix, []*yaml.Node) {
	items := l.r.Seq(v, what)
	if items == nil {
		return nil, nil
	}
	var ps []netip.Prefix
	var nodes []*yaml.Node
	for _, it := range items {
		s, ok := l.r.String(it, what)
		if !ok {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			l.r.Errorf(it, "%s: want a prefix in CIDR notation like 192.0.2.0/24, got %s", what, yamlutil.Describe(it))
			continue
		}
		ps = append(ps, p)
		nodes = append(nodes, it)
	}
	return ps, nodes
}

// minPrefixLength reads {ipv4: N, ipv6: N} into bits4 and bits6.
func (l *loader) minPrefixLength(v *yaml.Node, what string, bits4, bits6 *int) {
	l.r.Map(v, what,
		yamlutil.Field{Key: "ipv4", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, what+".ipv4", mapping.MinAllowedBits4, 32); ok {
				*bits4 = int(n)
			}
		}},
		yamlutil.Field{Key: "ipv6", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, what+".ipv6", mapping.MinAllowedBits6, 128); ok {
				*bits6 = int(n)
			}
		}},
	)
}

// novaTypes reads the Nova IP types to announce: fixed, floating.
func (l *loader) novaTypes(v *yaml.Node, what string) []string {
	items := l.r.Seq(v, what)
	if items == nil {
		return nil
	}
	if len(items) == 0 && len(v.Content) == 0 {
		l.r.Errorf(v, "%s: want at least one of %s, %s, got an empty list (to announce nothing, set enabled: false)", what, mapping.NovaFixed, mapping.NovaFloating)
		return nil
	}
	var types []string
	seen := map[string]int{}
	for _, it := range items {
		s, ok := l.r.String(it, what)
		if !ok {
			continue
		}
		if s != mapping.NovaFixed && s != mapping.NovaFloating {
			l.r.Errorf(it, "%s: want %s or %s, got %s", what, mapping.NovaFixed, mapping.NovaFloating, yamlutil.Describe(it))
			continue
		}
		if line, dup := seen[s]; dup {
			l.r.Errorf(it, "%s: duplicate type %s (first at line %d)", what, s, line)
			continue
		}
		seen[s] = it.Line
		types = append(types, s)
	}
	return types
}

// attributes reads BGP attributes for routes of a source other than the
// mapping file, with the mapping file's keys and value forms.
func (l *loader) attributes(v *yaml.Node, what string, x *mapping.Attributes) {
	l.r.Map(v, what,
		yamlutil.Field{Key: "communities", Do: func(_, v *yaml.Node) {
			x.Communities = append(x.Communities, listOf(l, v, what+".communities", mapping.ParseCommunity)...)
		}},
		yamlutil.Field{Key: "large-communities", Do: func(_, v *yaml.Node) {
			x.LargeCommunities = append(x.LargeCommunities, listOf(l, v, what+".large-communities", mapping.ParseLargeCommunity)...)
		}},
		yamlutil.Field{Key: "med", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint32(v, what+".med", 0); ok {
				x.MED = &n
			}
		}},
		yamlutil.Field{Key: "local-pref", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint32(v, what+".local-pref", 0); ok {
				x.LocalPref = &n
			}
		}},
		yamlutil.Field{Key: "as-path-prepend", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, what+".as-path-prepend", 0, 16); ok {
				p := uint8(n)
				x.ASPathPrepend = &p
			}
		}},
		yamlutil.Field{Key: "next-hop", Do: func(_, v *yaml.Node) {
			s, ok := l.r.String(v, what+".next-hop")
			if !ok {
				return
			}
			if s == "self" {
				x.NextHopSelf = true
				return
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				l.r.Errorf(v, "%s.next-hop: want self or an IP address, got %s", what, yamlutil.Describe(v))
				return
			}
			x.NextHop = a
			if err := x.Validate(); err != nil {
				x.NextHop = netip.Addr{}
				l.r.Errorf(v, "%s.next-hop: %s", what, strings.TrimPrefix(err.Error(), "attributes: next-hop: "))
			}
		}},
	)
}

// listOf reads a list of strings with parse (communities, large
// communities), reporting each item parse refuses at its line.
func listOf[T any](l *loader, v *yaml.Node, what string, parse func(string) (T, error)) []T {
	var out []T
	for _, it := range l.r.Seq(v, what) {
		s, ok := l.r.String(it, what)
		if !ok {
			continue
		}
		x, err := parse(s)
		if err != nil {
			l.r.Errorf(it, "%s: %v", what, err)
			continue
		}
		out = append(out, x)
	}
	return out
}

// requireMappingSource reports a mapping section that names no source of
// routes: a file (path) is required unless metadata or Nova is enabled.
func (l *loader) requireMappingSource(k, v *yaml.Node, m *Mapping) {
	if v == nil || v.Kind != yaml.MappingNode || m.Path != "" || m.Sources() {
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		if v.Content[i].Value == "path" {
			return // given but invalid: reported
		}
	}
	l.r.Errorf(lineNode(k.Line), "mapping: missing required key %q (a mapping file or directory; it may be left out only when mapping.metadata or mapping.nova is enabled)", "path")
}
