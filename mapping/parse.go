package mapping

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/internal/yamlutil"
)

// fileParser walks the YAML of one file and adds its entries, routes and
// prefixes to the builder; problems go to its Reader.
type fileParser struct {
	b        *builder
	r        yamlutil.Reader
	defaults attrs // the file's resolved defaults

	// The walk's current state, which the field callbacks write to: the
	// attributes of the level being read (cur) and where it is (curLevel,
	// curKey the entry's key, curIP the index in its ips: what names it in
	// messages), and the nodes of the keys that are handled after the walk
	// of their mapping. Levels are walked one after another, never nested.
	cur                        *attrs
	curLevel                   level
	curKey                     string
	curIP                      int
	uuidNode, ipsNode, pfxNode *yaml.Node
	vmOwn, ipOwn               attrs // what cur points to

	// The health of each level (health.go): the file's, the current
	// entry's and IP's; ipAnycast is the current IP's anycast key; and the
	// health and anycast IPs of the entry being read.
	defHealth, vmHealth, ipHealth *Health
	ipAnycast                     bool
	entHealth                     map[netip.Prefix]*Health
	entAnycast                    map[netip.Prefix]bool

	vmFields, ipFields, defaultFields []yamlutil.Field
	// whatFn is p.what, made once: the name of the current level, which
	// only messages need, is only made for them.
	whatFn func() string
	// name, if set, is what names the level in messages instead (a
	// health block of the daemon's config: ParseHealthYAML).
	name string
}

// what names the current level in messages: defaults, vm "web-01",
// vm "web-01" ips[2].
func (p *fileParser) what() string {
	if p.name != "" {
		return p.name
	}
	switch p.curLevel {
	case levelDefaults:
		return "defaults"
	case levelVM:
		return vmWhat(p.curKey)
	}
	return vmWhat(p.curKey) + " ips[" + strconv.Itoa(p.curIP) + "]"
}

func newFileParser(b *builder, file string) *fileParser {
	p := &fileParser{b: b, r: yamlutil.Reader{File: file}}
	p.whatFn = p.what
	attr := []yamlutil.Field{
		{Key: keyCommunities, Do: p.communities},
		{Key: keyLargeCommunities, Do: p.largeCommunities},
		{Key: keyMED, Do: p.med},
		{Key: keyLocalPref, Do: p.localPref},
		{Key: keyPrepend, Do: p.prepend},
		{Key: keyNextHop, Do: p.nextHop},
	}
	health := yamlutil.Field{Key: keyHealth, Do: p.health}
	p.defaultFields = slices.Concat(attr, []yamlutil.Field{health})
	p.vmFields = slices.Concat(
		[]yamlutil.Field{{Key: "uuid", Do: func(_, v *yaml.Node) { p.uuidNode = v }}},
		attr,
		[]yamlutil.Field{{Key: "ips", Do: func(_, v *yaml.Node) { p.ipsNode = v }}, health},
	)
	p.ipFields = slices.Concat(
		[]yamlutil.Field{{Key: "prefix", Do: func(_, v *yaml.Node) { p.pfxNode = v }}},
		attr,
		[]yamlutil.Field{health, {Key: keyAnycast, Do: p.anycast}},
	)
	return p
}

// errorAt records a problem at a line without a node (line 1: the top).
func (p *fileParser) errorAt(line int, format string, args ...any) {
	p.r.Errs = append(p.r.Errs, Error{File: p.r.File, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// parseYAML is r.Parse, except that a panic in the YAML parser (yaml.v3
// has had some on malformed input) is reported as a problem of the file
// instead of crashing the daemon that reloads its mapping.
func parseYAML(r *yamlutil.Reader, data []byte) (n *yaml.Node) {
	defer func() {
		if v := recover(); v != nil {
			r.Errs = append(r.Errs, Error{File: r.File, Line: 1, Msg: fmt.Sprintf("YAML parser failure: %v", v)})
			n = nil
		}
	}()
	return r.Parse(data)
}

// walkWhole reads the file in one piece.
func (p *fileParser) walkWhole(data []byte) {
	root := parseYAML(&p.r, data)
	if root == nil && len(p.r.Errs) > 0 {
		return // a syntax error; after one, nothing is sure
	}
	if root == nil || isNull(root) {
		p.errorAt(1, "the file is empty (want at least \"version: 1\" and \"vms\")")
		return
	}
	vmsKey, vms := p.top(root)
	if root.Kind != yaml.MappingNode {
		return
	}
	if vmsKey == nil {
		p.errorAt(1, "missing \"vms\" (the VMs and their IPs)")
		return
	}
	p.r.Pairs(vms, "vms", p.vm)
}

// top walks the top-level mapping: checks the version, reads the defaults,
// and returns the vms key and value, for the caller to walk.
func (p *fileParser) top(root *yaml.Node) (vmsKey, vms *yaml.Node) {
	var version, defaults *yaml.Node
	p.r.Map(root, "top level",
		yamlutil.Field{Key: "version", Do: func(_, v *yaml.Node) { version = v }},
		yamlutil.Field{Key: "defaults", Do: func(_, v *yaml.Node) { defaults = v }},
		yamlutil.Field{Key: "vms", Do: func(k, v *yaml.Node) { vmsKey, vms = k, v }},
	)
	if root.Kind != yaml.MappingNode {
		return nil, nil
	}
	switch {
	case version == nil:
		p.errorAt(1, "missing \"version\" (want \"version: 1\")")
	case !isVersion1(version):
		p.r.Errorf(version, "version: unsupported version %s (this virtbgp reads version 1)", yamlutil.Describe(version))
	}
	var own attrs
	if defaults != nil {
		p.cur, p.curLevel = &own, levelDefaults
		p.r.Map(defaults, "defaults", p.defaultFields...)
	}
	p.defaults = (&attrs{}).with(&own)
	p.cur = nil
	return vmsKey, vms
}

// isVersion1 reports whether n is the integer 1.
func isVersion1(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return false
	}
	v, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	return err == nil && v == 1
}

// isNull reports whether n is the null scalar (an empty value, ~, null).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// maxQuoted bounds a value quoted in a message: a huge value is cut, so
// that messages (log lines, status) stay small.
const maxQuoted = 64

// q quotes a value for a message, cut to maxQuoted bytes.
func q(s string) string { return strconv.Quote(fileerr.Clip(s, maxQuoted)) }

// vmWhat names the entry with this key in messages: vm "web-01".
func vmWhat(key string) string {
	key = fileerr.Clip(key, maxQuoted)
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return "vm " + strconv.Quote(key)
		}
	}
	return `vm "` + key + `"`
}

// vm reads one entry of vms.
func (p *fileParser) vm(k, v *yaml.Node) {
	if isNull(k) || k.Value == "" {
		p.r.Errorf(k, "vms: want a domain name or UUID as key, got %s", yamlutil.Describe(k))
		return
	}
	rec := vmRec{VM: VM{Key: k.Value, File: p.r.File, Line: k.Line}}
	if u, ok := parseUUID(k.Value); ok {
		rec.Key, rec.UUID = u, u
	}
	p.vmBody(&rec, k, v)
	p.b.pushVM(&rec)
}

// vmBody reads the value of an entry of vms into rec.
//
// The names of the entry and of its IPs in messages (vm "web-01",
// vm "web-01" ips[2]) are only made when a message needs them: the
// walk of a good file makes none.
func (p *fileParser) vmBody(rec *vmRec, k, v *yaml.Node) {
	idx := int32(len(p.b.vms))
	if isNull(v) {
		p.r.Errorf(k, "%s has no IPs", vmWhat(rec.Key))
		return
	}
	p.vmOwn = attrs{}
	p.cur, p.curLevel, p.curKey = &p.vmOwn, levelVM, rec.Key
	p.vmHealth, p.entHealth, p.entAnycast = nil, nil, nil
	p.uuidNode, p.ipsNode = nil, nil
	p.r.MapFunc(v, p.whatFn, p.vmFields...)
	if v.Kind != yaml.MappingNode {
		return
	}
	if n := p.uuidNode; n != nil {
		switch s, ok := p.string(n, "uuid"); {
		case !ok:
		case rec.UUID != "":
			p.r.Errorf(n, "%s: uuid: not allowed on an entry keyed by UUID", vmWhat(rec.Key))
		default:
			u, ok := parseUUID(s)
			if !ok {
				p.r.Errorf(n, "%s: uuid: want a UUID like 6695eb01-f6a4-8304-79aa-97f2502e193f, got %s", vmWhat(rec.Key), yamlutil.Describe(n))
				break
			}
			rec.UUID, rec.uuidLine = u, n.Line
		}
	}
	var items []*yaml.Node
	switch n := p.ipsNode; {
	case n == nil:
		p.r.Errorf(k, "%s has no IPs", vmWhat(rec.Key))
	case isNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0):
		p.r.Errorf(n, "%s has no IPs", vmWhat(rec.Key))
	default:
		items = p.seq(n, "ips")
	}
	if len(items) == 0 {
		return
	}
	vmAttrs := p.defaults.with(&p.vmOwn)
	routes := p.b.allocRoutes(len(items))
	for i, it := range items {
		routes = p.ip(rec.Key, i, it, &vmAttrs, idx, routes)
	}
	slices.SortFunc(routes, func(a, b Route) int { return a.Prefix.Compare(b.Prefix) })
	rec.Routes = slices.Clip(routes)
	rec.Health, rec.Anycast = p.entHealth, p.entAnycast
}

// ip reads the i-th item of the ips of the entry with this key and appends
// its route.
func (p *fileParser) ip(key string, i int, it *yaml.Node, vmAttrs *attrs, vm int32, routes []Route) []Route {
	a, at := vmAttrs, it // resolved attributes; node of the address
	var ipAttrs attrs
	p.ipHealth, p.ipAnycast = nil, false
	switch it.Kind {
	case yaml.ScalarNode:
		if isNull(it) {
			p.r.Errorf(it, "%s: ips: want an IP address or prefix, got null", vmWhat(key))
			return routes
		}
	case yaml.MappingNode:
		p.ipOwn = attrs{}
		p.cur, p.curLevel, p.curKey, p.curIP, p.pfxNode = &p.ipOwn, levelIP, key, i, nil
		p.r.MapFunc(it, p.whatFn, p.ipFields...)
		if p.pfxNode == nil {
			p.r.Errorf(it, "%s: missing \"prefix\"", p.what())
			return routes
		}
		at = p.pfxNode
		if _, ok := p.string(at, "prefix"); !ok {
			return routes
		}
		ipAttrs = vmAttrs.with(&p.ipOwn)
		a = &ipAttrs
	default:
		p.r.Errorf(it, "%s: ips: want an IP address, a prefix, or a mapping with \"prefix\", got %s", vmWhat(key), yamlutil.Describe(it))
		return routes
	}
	pfx, problem := parsePrefix(at.Value)
	if problem != "" {
		p.r.Errorf(at, "%s: %s", vmWhat(key), problem)
		return routes
	}
	if problem := a.familyProblem(pfx); problem != "" {
		p.r.Errorf(at, "%s: %s", vmWhat(key), problem)
		return routes
	}
	e := newPrefixEntry(pfx, vm, int32(at.Line))
	e.anycast = p.ipAnycast
	p.b.ents = append(p.b.ents, e)
	p.noteHealth(pfx)
	return append(routes, a.route(pfx))
}

// The readers of values below are those of yamlutil.Reader, for the value
// of key at the current level (what it is called in messages: what()
// followed by ": key"), with the common case of a good value first: the
// name is only made for a message.

// string is yamlutil.Reader.String.
func (p *fileParser) string(n *yaml.Node, key string) (string, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return n.Value, true
	}
	return p.r.String(n, p.what()+": "+key)
}

// uint is yamlutil.Reader.Uint.
func (p *fileParser) uint(n *yaml.Node, key string, lo, hi uint64) (uint64, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" && strings.IndexByte(n.Value, '_') < 0 {
		if v, err := strconv.ParseUint(n.Value, 0, 64); err == nil && v >= lo && v <= hi {
			return v, true
		}
	}
	return p.r.Uint(n, p.what()+": "+key, lo, hi)
}

// seq is yamlutil.Reader.Seq, except that the items of a list without
// aliases are the node's own (not a copy): the caller must not modify them.
func (p *fileParser) seq(n *yaml.Node, key string) []*yaml.Node {
	if n.Kind == yaml.SequenceNode && !slices.ContainsFunc(n.Content, isAlias) {
		return n.Content
	}
	return p.r.Seq(n, p.what()+": "+key)
}

func isAlias(n *yaml.Node) bool { return n.Kind == yaml.AliasNode }

// The attribute fields, shared by the three levels: they set p.cur.

func (p *fileParser) communities(_, v *yaml.Node) {
	list := parseList(p, v, keyCommunities, "community", wantCommunity, parseCommunity)
	p.cur.comms, p.cur.set = normComms(list), true
}

func (p *fileParser) largeCommunities(_, v *yaml.Node) {
	list := parseList(p, v, keyLargeCommunities, "large community", wantLargeCommunity, parseLargeCommunity)
	p.cur.large, p.cur.set = normLarge(list), true
}

// parseList reads the list under key, each item a string that parse
// accepts; an item it rejects is reported as an invalid noun, wanting want.
func parseList[T any](p *fileParser, v *yaml.Node, key, noun, want string, parse func(string) (T, bool)) []T {
	items := p.seq(v, key)
	list := make([]T, 0, len(items))
	for _, it := range items {
		s, ok := p.string(it, key)
		if !ok {
			continue
		}
		c, ok := parse(s)
		if !ok {
			p.r.Errorf(it, "%s: %s: invalid %s %s (want %s)", p.what(), key, noun, yamlutil.Describe(it), want)
			continue
		}
		list = append(list, c)
	}
	return list
}

func (p *fileParser) med(_, v *yaml.Node) {
	if n, ok := p.uint(v, keyMED, 0, math.MaxUint32); ok {
		p.cur.med, p.cur.set = p.b.number(uint32(n)), true
	}
}

func (p *fileParser) localPref(_, v *yaml.Node) {
	if n, ok := p.uint(v, keyLocalPref, 0, math.MaxUint32); ok {
		p.cur.localPref, p.cur.set = p.b.number(uint32(n)), true
	}
}

func (p *fileParser) prepend(_, v *yaml.Node) {
	if n, ok := p.uint(v, keyPrepend, 0, maxPrepend); ok {
		p.cur.prepend, p.cur.hasPrepend, p.cur.set = uint8(n), true, true
	}
}

func (p *fileParser) nextHop(_, v *yaml.Node) {
	s, ok := p.string(v, keyNextHop)
	if !ok {
		return
	}
	c := p.cur
	if s != "self" {
		a, problem := parseNextHop(s)
		if problem != "" {
			p.r.Errorf(v, "%s: %s: %s", p.what(), keyNextHop, problem)
			return
		}
		c.nextHop = a
	}
	c.hasNextHop, c.nhLevel, c.nhLine, c.set = true, p.curLevel, v.Line, true
}
