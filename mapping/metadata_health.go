package mapping

import (
	"encoding/xml"
	"strconv"
	"strings"
)

// The health block of virtbgp's element, the counterpart of a mapping
// file's health key (the same vocabulary, read by the same rules:
// checkIn.build):
//
//	<health on-failure="depreference" initial="up">
//	  <depreference communities="65001:666" med="500" as-path-prepend="2"/>
//	  <check type="http" url="http://{ip}/health" interval="2s" rise="2" fall="3"/>
//	</health>
//
// A key of the YAML is an attribute of the same name; the items of checks
// are <check> elements, the depreference block a <depreference> element;
// exec's command is a list separated by white space. At most one <health>
// in <vm> (every IP's) and one in each <ip> (that IP's, instead).

// healthAttrs are the attributes of <health>.
const healthAttrs = "on-failure, initial"

// checkAttrs are the attributes of <check>.
const checkAttrs = "type, name, address, url, status, body, command, interval, timeout, rise, fall, maintenance"

// health reads a <health>, whose start tag se was just read (at at, ending
// at end), up to its end tag. owner names its parent in messages (vm,
// ip[2]).
func (p *metaParser) health(se xml.StartElement, at pos, end int, owner string) (*Health, bool) {
	what := owner + ": health"
	h := &Health{Line: at.line}
	good := true
	bad := func(at pos, format string, args ...any) {
		p.errorAt(at, what+": "+format, args...)
		good = false
	}
	seen := map[string]bool{}
	for _, a := range se.Attr {
		if isNSDecl(a) {
			continue
		}
		key := a.Name.Local
		apos := p.attrPos(at, end, key)
		switch {
		case a.Name.Space != "":
			bad(apos, "attribute %q has the namespace %q: want it without a prefix", clip(key), clip(a.Name.Space))
			continue
		case key != "on-failure" && key != "initial":
			bad(apos, "unknown attribute %q (want %s)", clip(key), healthAttrs)
			continue
		case seen[key]:
			bad(at, "attribute %q is given twice", key)
			continue
		}
		seen[key] = true
		if key == "on-failure" {
			fa, ok := parseOnFailure(a.Value)
			if !ok {
				bad(apos, "on-failure: want withdraw or depreference, got %q", clip(a.Value))
			}
			h.OnFailure = fa
			continue
		}
		up, ok := parseInitial(a.Value)
		if !ok {
			bad(apos, "initial: want up or down, got %q", clip(a.Value))
		}
		h.InitialUp = up
	}
	var depAt pos
	hasDep := false
	names := map[string]pos{}
	n := 0
	for done := false; !done; {
		switch t := p.next().(type) {
		case nil:
			return nil, false
		case xml.EndElement:
			done = true
		case xml.StartElement:
			tat, tend := p.at, p.end
			switch {
			case t.Name.Space != se.Name.Space || t.Name.Local != "check" && t.Name.Local != "depreference":
				bad(tat, "unknown element <%s> (want <check> or <depreference>%s)", clip(qname(t.Name)), nsNote(se.Name.Space))
				p.skip()
				continue
			case t.Name.Local == "check":
				n++
				cwhat := what + ": check[" + strconv.Itoa(n) + "]"
				c, ok := p.check(t, tat, tend, cwhat)
				switch {
				case !ok:
					good = false
				case names[c.Name] != pos{}:
					first := names[c.Name]
					bad(tat, "check[%d]: check %q is already defined at %d:%d (give each check of a kind its own name)", n, c.Name, first.line, first.col)
				default:
					names[c.Name] = tat
					h.Checks = append(h.Checks, c)
				}
			case t.Name.Local == "depreference":
				if hasDep {
					bad(tat, "a second <depreference> (the first is at %d:%d)", depAt.line, depAt.col)
					break
				}
				hasDep, depAt = true, tat
				if !p.depreference(t, tat, tend, &h.Depreference, what+": depreference") {
					good = false
				}
			}
			p.inside(what)
		case xml.CharData:
			if !isSpace(t) {
				bad(p.at, "unexpected text %q (the values are attributes)", clip(strings.TrimSpace(string(t))))
			}
		case xml.ProcInst, xml.Directive:
			bad(p.at, "unexpected %s", tokenWhat(t))
		}
	}
	switch {
	case h.OnFailure == FailDepreference && !hasDep:
		bad(at, "on-failure: depreference needs a <depreference> element (communities, med, as-path-prepend)")
	case h.OnFailure == FailWithdraw && hasDep:
		bad(depAt, "depreference: only with on-failure=\"depreference\"")
	}
	if n == 0 {
		bad(at, "want at least one <check>")
	}
	return h, good
}

// inside reads what is left of an element inside <health> (a <check> or
// <depreference>, which hold nothing) up to its end tag, reporting what it
// holds.
func (p *metaParser) inside(what string) {
	for depth := 1; depth > 0; {
		switch t := p.next().(type) {
		case nil:
			return
		case xml.StartElement:
			if depth == 1 {
				p.errorAt(p.at, "%s: unexpected element <%s> inside <check> or <depreference>", what, clip(qname(t.Name)))
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 1 && !isSpace(t) {
				p.errorAt(p.at, "%s: unexpected text %q (the values are attributes)", what, clip(strings.TrimSpace(string(t))))
			}
		}
	}
}

// check reads the attributes of a <check> start tag.
func (p *metaParser) check(se xml.StartElement, at pos, end int, what string) (Check, bool) {
	in := checkIn[pos]{whole: at, line: at.line}
	fields := map[string]*field[pos, string]{
		"type": &in.kind, "name": &in.name, "address": &in.address, "url": &in.url, "body": &in.body,
		"maintenance": &in.maintenance, "interval": &in.interval, "timeout": &in.timeout,
	}
	counts := map[string]struct {
		f      *field[pos, int]
		lo, hi int
	}{"status": {&in.status, minStatus, maxStatus}, "rise": {&in.rise, 1, maxRiseFall}, "fall": {&in.fall, 1, maxRiseFall}}
	good := true
	seen := map[string]bool{}
	for _, a := range se.Attr {
		if isNSDecl(a) {
			continue
		}
		key := a.Name.Local
		apos := p.attrPos(at, end, key)
		if a.Name.Space != "" {
			p.errorAt(apos, "%s: attribute %q has the namespace %q: want it without a prefix", what, clip(key), clip(a.Name.Space))
			good = false
			continue
		}
		if seen[key] {
			p.errorAt(at, "%s: attribute %q is given twice", what, clip(key))
			good = false
			continue
		}
		seen[key] = true
		if f, ok := fields[key]; ok {
			*f = field[pos, string]{at: apos, v: a.Value, set: true, ok: true}
			continue
		}
		if c, ok := counts[key]; ok {
			v, err := strconv.ParseUint(a.Value, 10, 16)
			c.f.at, c.f.set = apos, true
			if err != nil || int(v) < c.lo || int(v) > c.hi {
				p.errorAt(apos, "%s: %s: want an integer from %d to %d, got %q", what, key, c.lo, c.hi, clip(a.Value))
				continue
			}
			c.f.v, c.f.ok = int(v), true
			continue
		}
		if key == "command" {
			in.command = field[pos, []string]{at: apos, v: strings.Fields(a.Value), set: true, ok: true}
			continue
		}
		p.errorAt(apos, "%s: unknown attribute %q (want %s)", what, clip(key), checkAttrs)
		good = false
	}
	// Values are described by the position of their attribute; the
	// messages quote the value itself.
	vals := map[pos]string{}
	for _, a := range se.Attr {
		if a.Name.Space == "" {
			vals[p.attrPos(at, end, a.Name.Local)] = a.Value
		}
	}
	c, ok := in.build(what, func(at pos, format string, args ...any) { p.errorAt(at, format, args...) },
		func(at pos) string { return strconv.Quote(printable(clip(vals[at]))) })
	return c, ok && good
}

// depreference reads the attributes of a <depreference> start tag into d:
// those of <vm> and <ip> of the same names, read by the same code.
func (p *metaParser) depreference(se xml.StartElement, at pos, end int, d *Depreference, what string) bool {
	var a attrs
	good := true
	seen := map[string]bool{}
	for _, x := range se.Attr {
		if isNSDecl(x) {
			continue
		}
		key := x.Name.Local
		apos := p.attrPos(at, end, key)
		switch {
		case x.Name.Space != "":
			p.errorAt(apos, "%s: attribute %q has the namespace %q: want it without a prefix", what, clip(key), clip(x.Name.Space))
		case key != keyCommunities && key != keyMED && key != keyPrepend:
			p.errorAt(apos, "%s: unknown attribute %q (want %s, %s, %s)", what, clip(key), keyCommunities, keyMED, keyPrepend)
		case seen[key]:
			p.errorAt(at, "%s: attribute %q is given twice", what, key)
		default:
			seen[key] = true
			problems := a.setText(key, x.Value, levelIP, at.line)
			for _, problem := range problems {
				p.errorAt(apos, "%s: %s: %s", what, key, problem)
			}
			if key == keyPrepend && len(problems) == 0 && a.prepend == 0 {
				p.errorAt(apos, "%s: %s: want an integer from 1 to %d, got %q", what, key, maxPrepend, x.Value)
				good = false
			}
			good = good && len(problems) == 0
			continue
		}
		good = false
	}
	if len(seen) == 0 {
		p.errorAt(at, "%s: want at least one of communities, med, as-path-prepend", what)
		good = false
	}
	d.Communities, d.MED, d.Prepend = a.comms, a.med, a.prepend
	return good
}

// parseOnFailure reads the value of on-failure.
func parseOnFailure(s string) (FailAction, bool) {
	switch s {
	case "withdraw":
		return FailWithdraw, true
	case "depreference":
		return FailDepreference, true
	}
	return FailWithdraw, false
}

// parseInitial reads the value of initial: whether it is up.
func parseInitial(s string) (up, ok bool) {
	switch s {
	case "up":
		return true, true
	case "down":
		return false, true
	}
	return false, false
}

// writeHealth writes h as a <health> element in its canonical form:
// every check's keys that differ from their defaults, in a fixed order.
func writeHealth(b *strings.Builder, h *Health, indent string) {
	b.WriteString(indent + "<health")
	if h.OnFailure == FailDepreference {
		b.WriteString(` on-failure="depreference"`)
	}
	if h.InitialUp {
		b.WriteString(` initial="up"`)
	}
	b.WriteString(">\n")
	if h.OnFailure == FailDepreference {
		d := &h.Depreference
		b.WriteString(indent + "  <depreference")
		writeAttrs(b, &attrs{comms: d.Communities, med: d.MED, prepend: d.Prepend, hasPrepend: d.Prepend > 0})
		b.WriteString("/>\n")
	}
	for i := range h.Checks {
		c := &h.Checks[i]
		b.WriteString(indent + `  <check type="` + string(c.Kind) + `"`)
		attr := func(key, v string) {
			b.WriteString(" " + key + `="`)
			xml.EscapeText(b, []byte(v)) //nolint:errcheck // a strings.Builder does not fail
			b.WriteByte('"')
		}
		if c.Name != string(c.Kind) {
			attr("name", c.Name)
		}
		switch c.Kind {
		case CheckTCP:
			attr("address", c.Address)
		case CheckHTTP:
			attr("url", c.URL)
			if c.Status != 200 {
				attr("status", strconv.Itoa(c.Status))
			}
			if c.Body != "" {
				attr("body", c.Body)
			}
		case CheckExec:
			attr("command", strings.Join(c.Command, " "))
		}
		if c.Interval != DefaultCheckInterval {
			attr("interval", c.Interval.String())
		}
		if c.Timeout != min(DefaultCheckTimeout, c.Interval) {
			attr("timeout", c.Timeout.String())
		}
		if c.Rise != DefaultCheckRise {
			attr("rise", strconv.Itoa(c.Rise))
		}
		if c.Fall != DefaultCheckFall {
			attr("fall", strconv.Itoa(c.Fall))
		}
		if c.Maintenance != "" {
			attr("maintenance", c.Maintenance)
		}
		b.WriteString("/>\n")
	}
	b.WriteString(indent + "</health>\n")
}
