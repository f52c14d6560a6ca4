package mapping

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"slices"
)

// NovaNS is the namespace of OpenStack Nova's element in a domain's
// metadata, <nova:instance>, since Nova 23.0.0 (Wallaby): NOVA_NS in
// nova/virt/libvirt/config.py. Nova 23 added the ports and their IPs, and
// changed the namespace from .../nova/1.0, which has no ports.
const NovaNS = "http://openstack.org/xmlns/libvirt/nova/1.1"

// The types of a Nova IP, as Nova writes them.
const (
	NovaFixed    = "fixed"
	NovaFloating = "floating"
)

// NovaInstance is what virtbgp reads of Nova's <nova:instance>: its ports
// and their IPs. Nova writes the element when it defines the domain, and
// again (virDomainSetMetadata, live) when an interface is attached or
// detached.
type NovaInstance struct {
	// Domain is the domain's name, as given to ParseNova.
	Domain string
	// Line and Column are where the element starts in the XML given.
	Line, Column int
	// Ports are the <nova:port> elements, in document order.
	Ports []NovaPort
}

// NovaPort is one <nova:port>: a Neutron port of the instance.
type NovaPort struct {
	// UUID is the port's, in lower case.
	UUID string
	// IPs are its <nova:ip> elements, in document order.
	IPs []NovaIP
}

// NovaIP is one <nova:ip type="..." address="..." ipVersion="..."/>.
type NovaIP struct {
	// Type is NovaFixed or NovaFloating as Nova writes them; ParseNova
	// keeps any other value, which NovaOptions cannot select.
	Type string
	// Address has no zone; its family is that of ipVersion.
	Address netip.Addr
	// Version is 4 or 6.
	Version int
}

// ParseNova reads Nova's <nova:instance> from the metadata of the domain
// named domain (the name is only used in messages). data is the element
// alone, as virDomainGetMetadata returns it (<instance>, in no namespace)
// or in the namespace NovaNS, or a whole domain XML (virsh dumpxml), in
// which the element is the child of <metadata> in the namespace NovaNS. A
// domain XML without the element gives nil and no error.
//
// It is strict about what virtbgp uses and tolerant of the rest, which is
// Nova's to change: the other children of <nova:instance> (package, name,
// creationTime, flavor, image, owner, root), and any element, attribute or
// text it does not know, are skipped. What it uses must be right: at most
// one <nova:ports>; each <nova:port> with a uuid attribute that is a UUID,
// no two with the same; each <nova:ip> with a type (any non-empty value),
// an address (an IP address without zone) and an ipVersion (4 or 6) that is
// the address's family. An element without <nova:ports> has no ports. On
// failure the error is a MetadataErrorList with every problem, each at its
// line and column, and XML that is not well-formed is one. A DOCTYPE is
// refused.
//
// Which of the IPs are announced, and with which attributes, is
// NovaInstance.Routes's business: ParseNova refuses no address.
func ParseNova(domain string, data []byte) (*NovaInstance, error) {
	r := newXMLReader(sourceNova, domain, data)
	se, at, found := r.find(NovaNS, "instance", "Nova's element")
	if !found {
		return nil, r.result()
	}
	p := novaParser{xmlReader: r, ns: se.Name.Space, uuids: map[string]pos{}}
	inst := &NovaInstance{Domain: domain, Line: at.line, Column: at.col}
	p.instance(inst)
	r.finish(se, at)
	if err := r.result(); err != nil {
		return nil, err
	}
	return inst, nil
}

// novaParser reads one <nova:instance>.
type novaParser struct {
	*xmlReader
	ns    string         // the namespace of the elements: the root's
	uuids map[string]pos // the port UUIDs seen, and where
}

// children calls fn for each child element of the element whose start tag
// was just read that is named local (in the root's namespace), skips the
// others and the text, and returns at its end tag. fn reads the child up to
// its end tag.
func (p *novaParser) children(local string, fn func(se xml.StartElement)) {
	for {
		switch t := p.next().(type) {
		case nil, xml.EndElement:
			return
		case xml.StartElement:
			if t.Name.Local == local && t.Name.Space == p.ns {
				fn(t)
				continue
			}
			p.skip()
		}
	}
}

func (p *novaParser) instance(inst *NovaInstance) {
	var first pos
	seen := false
	p.children("ports", func(xml.StartElement) {
		if seen {
			p.errorAt(p.at, "a second <ports> (the first is at %d:%d)", first.line, first.col)
			p.skip()
			return
		}
		seen, first = true, p.at
		p.children("port", func(se xml.StartElement) {
			inst.Ports = append(inst.Ports, p.port(se, len(inst.Ports)+1))
		})
	})
}

// port reads the n-th <port>, whose start tag se was just read.
func (p *novaParser) port(se xml.StartElement, n int) NovaPort {
	at, end := p.at, p.end
	what := fmt.Sprintf("port[%d]", n)
	var port NovaPort
	vals, seen, _ := p.attrs(&se, at, what, "uuid")
	switch u, ok := parseUUID(vals[0]); {
	case !seen[0]:
		p.errorAt(at, "%s: missing attribute \"uuid\"", what)
	case !ok:
		p.errorAt(p.attrPos(at, end, "uuid"), "%s: uuid: want a UUID like 6695eb01-f6a4-8304-79aa-97f2502e193f, got %q", what, clip(vals[0]))
	default:
		uat := p.attrPos(at, end, "uuid")
		if o, dup := p.uuids[u]; dup {
			p.errorAt(uat, "%s: port %s is listed twice (first at %d:%d)", what, u, o.line, o.col)
		} else {
			p.uuids[u] = uat
		}
		port.UUID = u
	}
	p.children("ip", func(se xml.StartElement) {
		if ip, ok := p.ip(se, fmt.Sprintf("%s ip[%d]", what, len(port.IPs)+1)); ok {
			port.IPs = append(port.IPs, ip)
		}
	})
	return port
}

// ip reads an <ip>, whose start tag se was just read, up to its end tag;
// what names it in messages.
func (p *novaParser) ip(se xml.StartElement, what string) (NovaIP, bool) {
	at, end := p.at, p.end
	p.skip() // its content, which virtbgp does not use
	vals, seen, ok := p.attrs(&se, at, what, "type", "address", "ipVersion")
	for i, key := range [...]string{"type", "address", "ipVersion"} {
		switch {
		case !seen[i]:
			p.errorAt(at, "%s: missing attribute %q", what, key)
			ok = false
		case vals[i] == "":
			p.errorAt(p.attrPos(at, end, key), "%s: %s is empty", what, key)
			ok = false
		}
	}
	if !ok {
		return NovaIP{}, false
	}
	ip := NovaIP{Type: vals[0]}
	a, err := netip.ParseAddr(vals[1])
	switch {
	case err != nil:
		p.errorAt(p.attrPos(at, end, "address"), "%s: address: invalid IP address %q", what, clip(vals[1]))
		return NovaIP{}, false
	case a.Zone() != "":
		p.errorAt(p.attrPos(at, end, "address"), "%s: address: %s: IPv6 zones are not allowed", what, printable(clip(vals[1])))
		return NovaIP{}, false
	}
	ip.Address = a
	switch vals[2] {
	case "4":
		ip.Version = 4
	case "6":
		ip.Version = 6
	default:
		p.errorAt(p.attrPos(at, end, "ipVersion"), "%s: ipVersion: want 4 or 6, got %q", what, clip(vals[2]))
		return NovaIP{}, false
	}
	if a.Is4() != (ip.Version == 4) {
		p.errorAt(p.attrPos(at, end, "ipVersion"), "%s: ipVersion is %d but the address %s is %s", what, ip.Version, a, family(a.Is4()))
		return NovaIP{}, false
	}
	return ip, true
}

// attrs returns the values of the attributes named keys (at most 3, without
// namespace) of the start tag se, whether each is given, and false if one
// is given twice, which it reports. It ignores the other attributes.
func (p *novaParser) attrs(se *xml.StartElement, at pos, what string, keys ...string) (vals [3]string, seen [3]bool, ok bool) {
	ok = true
	for _, a := range se.Attr {
		if a.Name.Space != "" {
			continue
		}
		for i, k := range keys {
			if a.Name.Local != k {
				continue
			}
			if seen[i] {
				p.errorAt(at, "%s: attribute %q is given twice", what, k)
				ok = false
			}
			vals[i], seen[i] = a.Value, true
		}
	}
	return vals, seen, ok
}

// NovaOptions are the operator's settings for the routes of Nova's
// metadata: which IPs, with which attributes.
type NovaOptions struct {
	// Types are the types of IP to announce: NovaFixed, NovaFloating. An
	// IP of another type is left out. None announces nothing.
	Types []string
	// Attributes are the attributes of every route: Nova's metadata
	// carries none.
	Attributes Attributes
	// Health is how every route follows the VM's health (the operator's
	// checks, trusted: Nova's metadata carries none); nil: no checks.
	Health *Health
}

// Validate reports what is wrong with the options: an unknown type,
// invalid attributes.
func (o *NovaOptions) Validate() error {
	_, err := o.level()
	return err
}

// level validates the options and returns the resolved attributes.
func (o *NovaOptions) level() (attrs, error) {
	if o == nil {
		return attrs{}, nil
	}
	for _, t := range o.Types {
		if t != NovaFixed && t != NovaFloating {
			return attrs{}, fmt.Errorf("nova IP type %q: want %s or %s", t, NovaFixed, NovaFloating)
		}
	}
	return o.Attributes.level()
}

// Routes returns the routes of the instance's IPs of the types o selects,
// with o's attributes, sorted by prefix: a host route (/32, /128) each.
// An address listed twice (on two ports) is one route. An address that
// cannot be announced is refused: a reserved address (as in a mapping
// file: link-local, loopback, IPv4-mapped, ...; Nova lists IPv6 link-local
// addresses in its own tests), or one of the other family than an explicit
// next hop of o. The error is for invalid options only.
//
// What the operator lets Nova claim at all is Allow's business: filter the
// routes with it.
func (n *NovaInstance) Routes(o *NovaOptions) ([]Route, []Refusal, error) {
	a, err := o.level()
	if err != nil {
		return nil, nil, err
	}
	var routes []Route
	var refused []Refusal
	for _, port := range n.Ports {
		for _, ip := range port.IPs {
			if o == nil || !slices.Contains(o.Types, ip.Type) {
				continue
			}
			pfx := netip.PrefixFrom(ip.Address, ip.Address.BitLen())
			var problem string
			if r, bad := reservedOverlap(pfx); bad {
				problem = "a reserved address (" + r.why + ")"
			} else {
				problem = a.familyProblem(pfx)
			}
			if problem != "" {
				refused = append(refused, Refusal{Domain: n.Domain, Prefix: pfx,
					Reason: fmt.Sprintf("nova port %s, %s IP: %s", port.UUID, ip.Type, problem)})
				continue
			}
			routes = append(routes, a.route(pfx))
		}
	}
	slices.SortFunc(routes, func(x, y Route) int { return x.Prefix.Compare(y.Prefix) })
	routes = slices.CompactFunc(routes, func(x, y Route) bool { return x.Prefix == y.Prefix })
	return slices.Clip(routes), refused, nil
}

// Health returns the health of routes (those Routes returned) by prefix:
// o.Health for each; nil without it.
func (n *NovaInstance) Health(routes []Route, o *NovaOptions) map[netip.Prefix]*Health {
	if o == nil || o.Health == nil || len(routes) == 0 {
		return nil
	}
	h := make(map[netip.Prefix]*Health, len(routes))
	for _, r := range routes {
		h[r.Prefix] = o.Health
	}
	return h
}
