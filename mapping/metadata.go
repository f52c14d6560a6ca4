package mapping

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// MetadataNS is the XML namespace of virtbgp's element in a libvirt
// domain's <metadata>: the URI that virDomainGetMetadata and
// virDomainSetMetadata (virsh metadata --uri) take. The project's GitHub
// organization owns the host virtbgp.github.io, so no one else mints names
// under it. The trailing 1 is the version of the element's format: a
// change that an older virtbgp would misread gets a new URI, and the
// element carries no version attribute. See docs/metadata.md.
const MetadataNS = "https://virtbgp.github.io/xmlns/virtbgp/1"

// MetadataKey is the namespace prefix that virtbgp writes its element
// with: the key of virDomainSetMetadata (virsh metadata --key). The domain
// XML then shows <virtbgp:vm xmlns:virtbgp="...">. Readers go by the URI,
// never by the prefix.
const MetadataKey = "virtbgp"

// Metadata is virtbgp's element in one domain's metadata, read by
// ParseMetadata: the counterpart of one entry of a mapping file.
type Metadata struct {
	// Domain is the domain's name, as given to the parser.
	Domain string
	// Line and Column are where the element starts in the XML given.
	Line, Column int
	// Routes are the element's routes with resolved attributes, sorted by
	// prefix, as VM.Routes.
	Routes []Route
	// Health is, by prefix, how each route follows the VM's health, as
	// VM.Health: the <health> of its <ip>, else the element's, else
	// MetadataOptions.Health. A route without checks is not in it (nil
	// when none has). Whether the daemon runs the checks is
	// HealthTrust's business.
	Health map[netip.Prefix]*Health

	vm       attrs    // the element's own attributes
	vmHealth *Health  // the element's own <health>
	ips      []metaIP // its <ip> elements, in document order
}

// metaIP is one <ip> element as written.
type metaIP struct {
	prefix netip.Prefix
	own    attrs
	health *Health // its own <health>
	at     pos     // where its prefix is
	n      int     // its number, from 1, for messages: ip[n]
}

// MetadataOptions are a caller's settings for reading virtbgp metadata.
type MetadataOptions struct {
	// Defaults are the attributes of every IP, below the element's and the
	// <ip>'s own, as a mapping file's defaults are below its entries'.
	// The daemon's config may set them, for instance a community that
	// marks the routes that come from metadata.
	Defaults Attributes
	// Health is the health of every IP that neither its <ip> nor the
	// element gives one, as a mapping file's defaults' health: the
	// operator's (mapping.metadata.health.defaults), trusted. nil: none.
	Health *Health
}

// ParseMetadata reads virtbgp's element from the metadata of the domain
// named domain (the name is only used in messages), with no defaults: see
// MetadataOptions.Parse.
func ParseMetadata(domain string, data []byte) (*Metadata, error) {
	return (*MetadataOptions)(nil).Parse(domain, data)
}

// Parse reads virtbgp's element from the metadata of the domain named
// domain (the name is only used in messages). data is the element alone,
// as virDomainGetMetadata returns it (<vm>, in no namespace) or in the
// namespace MetadataNS, or a whole domain XML (virsh dumpxml), in which the
// element is the child of <metadata> in the namespace MetadataNS. A domain
// XML without the element gives nil and no error: absent metadata is no
// entry.
//
// The element is read as strictly as a mapping file, and with the same
// resolution of attributes (see the package documentation): an IP's
// attributes override the element's, which override o.Defaults;
// communities and large communities add up. On failure the error is a
// MetadataErrorList with every problem found, each at its line and column:
// XML that is not well-formed (then nothing after it is read), an unknown
// element or attribute, an attribute given twice, text inside the element,
// a missing or invalid prefix, a reserved address, a value out of range,
// an element without <ip>, a prefix listed twice or inside another, a next
// hop of the other family, and in a <health> (Metadata.Health) every
// problem a mapping file's health key can have. A DOCTYPE is refused.
// Invalid o.Defaults are a problem too (check them once with
// Attributes.Validate). Whether the checks may run is HealthTrust's
// business.
//
// A nil *MetadataOptions gives no defaults.
func (o *MetadataOptions) Parse(domain string, data []byte) (*Metadata, error) {
	r := newXMLReader(sourceVirtbgp, domain, data)
	var defaults attrs
	if o != nil {
		var err error
		if defaults, err = o.Defaults.level(); err != nil {
			r.errorTop("the caller's defaults: %v", err)
			return nil, r.result()
		}
	}
	se, at, found := r.find(MetadataNS, "vm", "virtbgp's element")
	if !found {
		return nil, r.result()
	}
	m := &Metadata{Domain: domain, Line: at.line, Column: at.col}
	p := metaParser{xmlReader: r, m: m}
	var defHealth *Health
	if o != nil {
		defHealth = o.Health
	}
	p.vm(se, at, &defaults, defHealth)
	r.finish(se, at)
	if err := r.result(); err != nil {
		return nil, err
	}
	return m, nil
}

// metaParser reads one virtbgp element.
type metaParser struct {
	*xmlReader
	m *Metadata
}

// The bits of the attributes that a tag has, to refuse one given twice.
const (
	bitPrefix = 1 << iota
	bitCommunities
	bitLarge
	bitMED
	bitLocalPref
	bitPrepend
	bitNextHop
)

func attrBit(key string) int {
	switch key {
	case "prefix":
		return bitPrefix
	case keyCommunities:
		return bitCommunities
	case keyLargeCommunities:
		return bitLarge
	case keyMED:
		return bitMED
	case keyLocalPref:
		return bitLocalPref
	case keyPrepend:
		return bitPrepend
	case keyNextHop:
		return bitNextHop
	}
	return 0
}

// attrs reads the attributes of the start tag se (at at, ending at end)
// into own, at level lvl; what names the tag in messages. It returns the
// value of prefix (on <ip> only) and whether it was given.
func (p *metaParser) attrs(se *xml.StartElement, at pos, end int, own *attrs, lvl level, what string) (prefix string, hasPrefix bool) {
	seen := 0
	for _, a := range se.Attr {
		if isNSDecl(a) {
			continue
		}
		key := a.Name.Local
		bit := attrBit(key)
		if bit == bitPrefix && lvl != levelIP {
			bit = 0
		}
		switch {
		case a.Name.Space != "":
			p.errorAt(p.attrPos(at, end, key), "%s: attribute %q has the namespace %q: want it without a prefix", what, clip(key), clip(a.Name.Space))
			continue
		case bit == 0:
			want := attrKeyList
			if lvl == levelIP {
				want = "prefix, " + want
			}
			p.errorAt(p.attrPos(at, end, key), "%s: unknown attribute %q (want %s)", what, clip(key), want)
			continue
		case seen&bit != 0:
			p.errorAt(at, "%s: attribute %q is given twice", what, key)
			continue
		}
		seen |= bit
		if bit == bitPrefix {
			prefix, hasPrefix = a.Value, true
			continue
		}
		problems := own.setText(key, a.Value, lvl, at.line)
		for _, problem := range problems {
			p.errorAt(p.attrPos(at, end, key), "%s: %s: %s", what, key, problem)
		}
	}
	return prefix, hasPrefix
}

// vm reads the element, whose start tag se is at at, up to its end tag.
func (p *metaParser) vm(se xml.StartElement, at pos, defaults *attrs, defHealth *Health) {
	m := p.m
	p.attrs(&se, at, p.end, &m.vm, levelVM, "vm")
	vmAttrs := defaults.with(&m.vm)
	ns := se.Name.Space
	var routes []Route
	var healthAt pos // where the element's <health> is
	n := 0           // the <ip> elements seen
	for done := false; !done; {
		switch t := p.next().(type) {
		case nil:
			return
		case xml.EndElement:
			done = true
		case xml.StartElement:
			if t.Name.Local == "health" && t.Name.Space == ns {
				if healthAt.line > 0 {
					p.errorAt(p.at, "vm: a second <health> (the first is at %d:%d)", healthAt.line, healthAt.col)
					p.skip()
					continue
				}
				healthAt = p.at
				if h, ok := p.health(t, p.at, p.end, "vm"); ok {
					m.vmHealth = h
				}
				continue
			}
			if t.Name.Local != "ip" || t.Name.Space != ns {
				p.errorAt(p.at, "vm: unknown element <%s> (want <ip> or <health>%s)", clip(qname(t.Name)), nsNote(ns))
				p.skip()
				continue
			}
			n++
			if r, ok := p.ip(t, n, &vmAttrs); ok {
				routes = append(routes, r)
			}
		case xml.CharData:
			if !isSpace(t) {
				p.errorAt(p.at, "vm: unexpected text %q (the values are attributes)", clip(strings.TrimSpace(string(t))))
			}
		case xml.ProcInst, xml.Directive:
			p.errorAt(p.at, "vm: unexpected %s", tokenWhat(t))
		}
	}
	if n == 0 {
		p.errorAt(at, "vm has no IPs (want at least one <ip prefix=\"...\"/>; to remove the element, use virsh metadata --remove)")
		return
	}
	slices.SortFunc(routes, func(a, b Route) int { return a.Prefix.Compare(b.Prefix) })
	p.checkNested()
	m.Routes = slices.Clip(routes)
	for i := range m.ips {
		ip := &m.ips[i]
		h := cmp.Or(ip.health, m.vmHealth, defHealth)
		if h == nil {
			continue
		}
		if m.Health == nil {
			m.Health = make(map[netip.Prefix]*Health)
		}
		m.Health[ip.prefix] = h
	}
}

// nsNote says in which namespace an element is wanted, for messages.
func nsNote(ns string) string {
	if ns == "" {
		return ""
	}
	return " in the namespace " + ns
}

func tokenWhat(t xml.Token) string {
	if _, ok := t.(xml.Directive); ok {
		return "directive"
	}
	return "processing instruction"
}

// ip reads the n-th <ip>, whose start tag se was just read, up to its end
// tag, and returns its route.
func (p *metaParser) ip(se xml.StartElement, n int, vmAttrs *attrs) (Route, bool) {
	at, end := p.at, p.end
	what := "ip[" + strconv.Itoa(n) + "]"
	rec := metaIP{n: n}
	s, hasPrefix := p.attrs(&se, at, end, &rec.own, levelIP, what)
	var healthAt pos
	healthOK := true
	for done := false; !done; {
		switch t := p.next().(type) {
		case nil:
			return Route{}, false
		case xml.EndElement:
			done = true
		case xml.StartElement:
			if t.Name.Local == "health" && t.Name.Space == se.Name.Space {
				if healthAt.line > 0 {
					p.errorAt(p.at, "%s: a second <health> (the first is at %d:%d)", what, healthAt.line, healthAt.col)
					p.skip()
					continue
				}
				healthAt = p.at
				h, ok := p.health(t, p.at, p.end, what)
				healthOK = ok
				rec.health = h
				continue
			}
			p.errorAt(p.at, "%s: unexpected element <%s> inside <ip> (want <health>)", what, clip(qname(t.Name)))
			p.skip()
		case xml.CharData:
			if !isSpace(t) {
				p.errorAt(p.at, "%s: unexpected text %q (the values are attributes)", what, clip(strings.TrimSpace(string(t))))
			}
		case xml.ProcInst, xml.Directive:
			p.errorAt(p.at, "%s: unexpected %s", what, tokenWhat(t))
		}
	}
	if !hasPrefix {
		p.errorAt(at, "%s: missing attribute \"prefix\" (an IP address or prefix)", what)
		return Route{}, false
	}
	rec.at = p.attrPos(at, end, "prefix")
	pfx, problem := parsePrefix(s)
	if problem != "" {
		p.errorAt(rec.at, "%s: prefix: %s", what, problem)
		return Route{}, false
	}
	a := vmAttrs.with(&rec.own)
	if problem := a.familyProblem(pfx); problem != "" {
		p.errorAt(rec.at, "%s: %s", what, problem)
		return Route{}, false
	}
	if !healthOK {
		return Route{}, false
	}
	rec.prefix = pfx
	p.m.ips = append(p.m.ips, rec)
	return a.route(pfx), true
}

// checkNested reports every prefix of the element that is listed twice or
// lies inside another, as a mapping file's.
func (p *metaParser) checkNested() {
	ips := slices.Clone(p.m.ips)
	slices.SortFunc(ips, func(a, b metaIP) int {
		if c := a.prefix.Compare(b.prefix); c != 0 {
			return c
		}
		return a.n - b.n
	})
	nestedConflicts(len(ips),
		func(i int) (netip.Prefix, bool) { return ips[i].prefix, true },
		func(i, outer int) {
			e, o := &ips[i], &ips[outer]
			if e.prefix == o.prefix {
				p.errorAt(e.at, "ip[%d]: %s is listed twice (first as ip[%d], at %d:%d)", e.n, e.prefix, o.n, o.at.line, o.at.col)
				return
			}
			p.errorAt(e.at, "ip[%d]: %s overlaps %s (ip[%d], at %d:%d)", e.n, e.prefix, o.prefix, o.n, o.at.line, o.at.col)
		})
}

// Element returns the element in its canonical form, without namespace:
// what virtbgp metadata set writes with virDomainSetMetadata (key
// MetadataKey, namespace MetadataNS), and what virDomainGetMetadata then
// returns. The attributes are those written, in a fixed order, with
// communities sorted; the <ip> elements keep their order; an address
// stands for its host route. ParseMetadata of the result gives the same
// routes.
func (m *Metadata) Element() string {
	var b strings.Builder
	b.WriteString("<vm")
	writeAttrs(&b, &m.vm)
	b.WriteString(">\n")
	if m.vmHealth != nil {
		writeHealth(&b, m.vmHealth, "  ")
	}
	for i := range m.ips {
		ip := &m.ips[i]
		b.WriteString(`  <ip prefix="`)
		if ip.prefix.IsSingleIP() {
			b.WriteString(ip.prefix.Addr().String())
		} else {
			b.WriteString(ip.prefix.String())
		}
		b.WriteByte('"')
		writeAttrs(&b, &ip.own)
		if ip.health == nil {
			b.WriteString("/>\n")
			continue
		}
		b.WriteString(">\n")
		writeHealth(&b, ip.health, "    ")
		b.WriteString("  </ip>\n")
	}
	b.WriteString("</vm>\n")
	return b.String()
}

// writeAttrs writes the attributes that a gives as XML attributes. None of
// their values needs escaping.
func writeAttrs(b *strings.Builder, a *attrs) {
	if len(a.comms) > 0 {
		b.WriteString(` communities="`)
		for i, c := range a.comms {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(FormatCommunity(c))
		}
		b.WriteByte('"')
	}
	if len(a.large) > 0 {
		b.WriteString(` large-communities="`)
		for i, c := range a.large {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(c.String())
		}
		b.WriteByte('"')
	}
	if a.med != nil {
		fmt.Fprintf(b, ` med="%d"`, *a.med)
	}
	if a.localPref != nil {
		fmt.Fprintf(b, ` local-pref="%d"`, *a.localPref)
	}
	if a.hasPrepend {
		fmt.Fprintf(b, ` as-path-prepend="%d"`, a.prepend)
	}
	if a.hasNextHop {
		if a.nextHop.IsValid() {
			fmt.Fprintf(b, ` next-hop="%s"`, a.nextHop)
		} else {
			b.WriteString(` next-hop="self"`)
		}
	}
}
