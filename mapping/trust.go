package mapping

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The shortest prefixes that an Allow may list: an operator allows a
// source its service pools, never "everything" nor a range so broad that it
// holds the infrastructure's own addresses. A /16 of IPv4 is 65,536
// addresses; a /32 of IPv6 is a whole LIR allocation.
const (
	MinAllowedBits4 = 16
	MinAllowedBits6 = 32
)

// Allow is what the operator lets one source of routes other than the
// mapping files claim: virtbgp metadata, Nova's metadata. Whoever can write
// a domain's metadata (an orchestrator, a tenant with the right API) would
// otherwise announce any prefix; Allow keeps each route inside the pools
// the operator gives that source. The zero Allow allows nothing.
type Allow struct {
	// Prefixes are the pools: a claimed prefix must be one of them or lie
	// inside one. Each must be at least MinAllowedBits4 (IPv4) or
	// MinAllowedBits6 (IPv6) long, without host bits, and hold no reserved
	// address (those a mapping file refuses).
	Prefixes []netip.Prefix
	// MinBits4 and MinBits6 are the shortest IPv4 and IPv6 prefix the
	// source may claim. 0 means host routes only (/32, /128), as Nova's
	// IPs are; else from MinAllowedBits4 to 32, MinAllowedBits6 to 128.
	MinBits4, MinBits6 int
	// NextHops are where the source may send traffic: an explicit next
	// hop (rather than self) must lie inside one of them. None: explicit
	// next hops are refused. The rules of Prefixes apply.
	NextHops []netip.Prefix
}

// Refusal is a route that was not accepted from a source: the domain it
// came from, its prefix, and why, for the caller to log and report.
type Refusal struct {
	Domain string
	Prefix netip.Prefix
	Reason string
}

func (r Refusal) String() string {
	return fmt.Sprintf("domain %s: %s refused: %s", strconv.Quote(r.Domain), r.Prefix, r.Reason)
}

// AllowError is one problem of an Allow: the field (Prefixes, NextHops,
// MinBits4, MinBits6) and, in a list, the index of the item.
type AllowError struct {
	Field string
	Index int
	Msg   string
}

func (e AllowError) Error() string {
	if e.Field == "Prefixes" || e.Field == "NextHops" {
		return fmt.Sprintf("%s[%d]: %s", e.Field, e.Index, e.Msg)
	}
	return e.Field + ": " + e.Msg
}

// AllowErrorList is every problem of an Allow, in the order of its fields.
type AllowErrorList []AllowError

func (l AllowErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Validate reports every problem of the allowed lists and lengths, as an
// AllowErrorList; nil if there is none. Besides each prefix's own rules
// (see Allow), a prefix listed twice or inside another of the same list is
// a problem: it means the list is not what its author thinks.
func (a *Allow) Validate() error {
	var errs AllowErrorList
	for _, list := range []struct {
		field string
		ps    []netip.Prefix
	}{{"Prefixes", a.Prefixes}, {"NextHops", a.NextHops}} {
		for i, p := range list.ps {
			if problem := allowedProblem(p); problem != "" {
				errs = append(errs, AllowError{Field: list.field, Index: i, Msg: problem})
			}
		}
		errs = append(errs, nestedAllowed(list.field, list.ps)...)
	}
	for _, f := range []struct {
		field    string
		v, lo, n int
	}{{"MinBits4", a.MinBits4, MinAllowedBits4, 32}, {"MinBits6", a.MinBits6, MinAllowedBits6, 128}} {
		if f.v != 0 && (f.v < f.lo || f.v > f.n) {
			errs = append(errs, AllowError{Field: f.field, Msg: fmt.Sprintf("want 0 (host routes only) or from %d to %d, got %d", f.lo, f.n, f.v)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// allowedProblem returns what is wrong with p as an allowed prefix, "" if
// nothing.
func allowedProblem(p netip.Prefix) string {
	if !p.IsValid() {
		return "not a valid prefix"
	}
	if p.Addr().Zone() != "" {
		return p.String() + ": IPv6 zones are not allowed"
	}
	if m := p.Masked(); m != p {
		return fmt.Sprintf("%s has host bits set (the prefix is %s)", p, m)
	}
	if min := minAllowed(p.Addr().Is4()); p.Bits() < min {
		return fmt.Sprintf("%s is too broad: an allowed %s prefix must be /%d or longer", p, family(p.Addr().Is4()), min)
	}
	if r, bad := reservedOverlap(p); bad {
		return fmt.Sprintf("%s contains reserved addresses (%s %s)", p, r.why, r.prefix)
	}
	return ""
}

func minAllowed(is4 bool) int {
	if is4 {
		return MinAllowedBits4
	}
	return MinAllowedBits6
}

// nestedAllowed reports the prefixes of the list that are listed twice or
// lie inside another, among those without a problem of their own: pairs,
// for the short lists of a config.
func nestedAllowed(field string, ps []netip.Prefix) []AllowError {
	var errs []AllowError
	for i, p := range ps {
		if allowedProblem(p) != "" {
			continue
		}
		for j, o := range ps[:i] {
			switch {
			case allowedProblem(o) != "":
				continue
			case p == o:
				errs = append(errs, AllowError{Field: field, Index: i, Msg: fmt.Sprintf("%s is listed twice (first at %d)", p, j)})
			case o.Bits() <= p.Bits() && o.Contains(p.Addr()):
				errs = append(errs, AllowError{Field: field, Index: i, Msg: fmt.Sprintf("%s lies inside %s (at %d)", p, o, j)})
			case p.Bits() < o.Bits() && p.Contains(o.Addr()):
				errs = append(errs, AllowError{Field: field, Index: i, Msg: fmt.Sprintf("%s holds %s (at %d)", p, o, j)})
			default:
				continue
			}
			break
		}
	}
	return errs
}

// Filter splits the routes that the source claims for the domain (the
// name is only used in refusals) into those it may announce and those it
// may not, with the reason: a prefix shorter than MinBits4 or MinBits6, or
// outside Prefixes; an explicit next hop outside NextHops. A list item that
// Validate refuses allows nothing here, whether or not the caller checked.
// When every route is accepted, accepted is routes itself.
func (a *Allow) Filter(domain string, routes []Route) (accepted []Route, refused []Refusal) {
	return filterRoutes(domain, routes, a.refuse)
}

// filterRoutes splits routes by refuse's reason for each ("": accepted),
// in order; refuse may keep state across the routes. When every route is
// accepted, accepted is routes itself (no allocation).
func filterRoutes(domain string, routes []Route, refuse func(*Route) string) (accepted []Route, refused []Refusal) {
	for i := range routes {
		r := &routes[i]
		reason := refuse(r)
		if reason == "" {
			if refused != nil {
				accepted = append(accepted, *r)
			}
			continue
		}
		if refused == nil {
			accepted = append(make([]Route, 0, len(routes)-1), routes[:i]...)
		}
		refused = append(refused, Refusal{Domain: domain, Prefix: r.Prefix, Reason: reason})
	}
	if refused == nil {
		return routes, nil
	}
	return accepted, refused
}

// refuse returns why r may not be announced, "" if it may.
func (a *Allow) refuse(r *Route) string {
	p := r.Prefix
	if !p.IsValid() {
		return "not a valid prefix"
	}
	min := a.MinBits6
	if p.Addr().Is4() {
		min = a.MinBits4
	}
	if min == 0 {
		min = p.Addr().BitLen() // host routes only
	}
	switch {
	case p.Bits() < min:
		if min == p.Addr().BitLen() {
			return fmt.Sprintf("a /%d, and this source may claim host routes (/%d) only", p.Bits(), min)
		}
		return fmt.Sprintf("a /%d, and this source may claim /%d or longer only", p.Bits(), min)
	case !inside(p, a.Prefixes):
		return "outside the prefixes allowed to this source"
	}
	if nh := r.NextHop; nh.IsValid() && !inside(netip.PrefixFrom(nh, nh.BitLen()), a.NextHops) {
		if len(a.NextHops) == 0 {
			return fmt.Sprintf("next hop %s: this source may not set a next hop (only self)", nh)
		}
		return fmt.Sprintf("next hop %s is outside the next hops allowed to this source", nh)
	}
	return ""
}

// inside reports whether p is one of the allowed prefixes, or lies inside
// one. An allowed prefix that Validate would refuse for its length, its
// host bits or a zone allows nothing, so that an Allow built without
// Validate never widens; its reserved-address rule is left to the claims
// themselves (every parser refuses a reserved address), which keeps this
// check, run for each claimed route on each pass, cheap.
func inside(p netip.Prefix, allowed []netip.Prefix) bool {
	for _, o := range allowed {
		if o.Bits() <= p.Bits() && o.Contains(p.Addr()) &&
			o.Bits() >= minAllowed(o.Addr().Is4()) && o.Addr().Zone() == "" && o.Masked() == o {
			return true
		}
	}
	return false
}

// The defaults of a HealthTrust.
const (
	// DefaultMetadataMinInterval is the shortest interval of a check from
	// metadata unless the operator sets another.
	DefaultMetadataMinInterval = time.Second
	// DefaultMetadataMaxChecks is how many probes one element may make the
	// hypervisor run unless the operator sets another.
	DefaultMetadataMaxChecks = 8
	// MaxMetadataMaxChecks is the most an operator may allow.
	MaxMetadataMaxChecks = 64
)

// HealthTrust is what the operator lets virtbgp's element declare of
// health checks. The element is written by the VM's owner, and its checks
// run on the hypervisor: a check from metadata is run only if it probes
// the IP it guards, and never runs anything on the hypervisor. These
// rules are fixed, whatever the operator allows:
//
//   - no exec check (it would run a command on the hypervisor);
//   - no maintenance file (a path on the hypervisor's file system);
//   - a tcp check's address and an http check's URL have the host {ip}:
//     the address of the route the check guards, which the source's
//     Allow admits like the route itself, so that the hypervisor probes
//     no other address (no server-side request forgery).
//
// Within them, the operator narrows the types and bounds the load. A
// route whose health breaks a rule is refused (a Refusal, with the
// check's name and the rule), not announced without its checks: its owner
// asked for it to follow them. The zero HealthTrust allows agent, tcp and
// http checks every DefaultMetadataMinInterval or slower, at most
// DefaultMetadataMaxChecks probes per element.
type HealthTrust struct {
	// Types are the kinds of check the element may declare; none: agent,
	// tcp and http. CheckExec is never allowed (Validate refuses it).
	Types []CheckKind
	// MinInterval is the shortest interval a check may have; 0:
	// DefaultMetadataMinInterval.
	MinInterval time.Duration
	// MaxChecks is how many probes one element may make the hypervisor
	// run, each check counted once for each IP it guards; 0:
	// DefaultMetadataMaxChecks. The routes of the element, in prefix
	// order, are admitted while their checks fit.
	MaxChecks int
	// Defaults is the operator's own health for the element's IPs
	// (MetadataOptions.Health): trusted, it is exempt from these rules and
	// from the count.
	Defaults *Health
}

// Validate reports what is wrong with the trust rules: exec or an unknown
// kind in Types, a MinInterval out of 100ms..1h, a MaxChecks out of
// 0..MaxMetadataMaxChecks.
func (t *HealthTrust) Validate() error {
	for _, k := range t.Types {
		switch k {
		case CheckAgent, CheckTCP, CheckHTTP:
		case CheckExec:
			return fmt.Errorf("types: exec checks cannot be allowed from metadata (they would run a command on the hypervisor; give them in the mapping file)")
		default:
			return fmt.Errorf("types: want agent, tcp or http, got %q", k)
		}
	}
	if t.MinInterval != 0 && (t.MinInterval < minCheckInterval || t.MinInterval > maxCheckInterval) {
		return fmt.Errorf("min-interval: want a duration from 100ms to 1h, got %s", t.MinInterval)
	}
	if t.MaxChecks < 0 || t.MaxChecks > MaxMetadataMaxChecks {
		return fmt.Errorf("max-checks: want 1 to %d, got %d", MaxMetadataMaxChecks, t.MaxChecks)
	}
	return nil
}

// Filter splits routes, with their health (by prefix, as Metadata.Health),
// into those whose checks the rules admit and those refused, with the
// reason. A route without checks, or with the operator's Defaults, is
// admitted as it is. When every route is admitted, accepted is routes
// itself.
func (t *HealthTrust) Filter(domain string, routes []Route, health map[netip.Prefix]*Health) (accepted []Route, refused []Refusal) {
	if len(health) == 0 {
		return routes, nil
	}
	budget := cmp.Or(t.MaxChecks, DefaultMetadataMaxChecks)
	return filterRoutes(domain, routes, func(r *Route) string {
		h := health[r.Prefix]
		if h == nil || h == t.Defaults {
			return ""
		}
		reason := t.refuse(h)
		if reason == "" && len(h.Checks) > budget {
			reason = fmt.Sprintf("its health checks would exceed the %d probes this source may run per domain (each check counts once for each IP it guards)",
				cmp.Or(t.MaxChecks, DefaultMetadataMaxChecks))
		}
		if reason == "" {
			budget -= len(h.Checks)
		}
		return reason
	})
}

// refuse returns why the checks of h may not run from metadata, "" if they
// may: the first check that breaks a rule.
func (t *HealthTrust) refuse(h *Health) string {
	minInterval := cmp.Or(t.MinInterval, DefaultMetadataMinInterval)
	for i := range h.Checks {
		c := &h.Checks[i]
		why := ""
		switch {
		case c.Kind == CheckExec:
			why = "exec checks are not allowed from metadata (they would run a command on the hypervisor)"
		case len(t.Types) > 0 && !slices.Contains(t.Types, c.Kind) || len(t.Types) == 0 && c.Kind != CheckAgent && c.Kind != CheckTCP && c.Kind != CheckHTTP:
			why = fmt.Sprintf("type %s is not allowed from metadata (the operator allows %s)", c.Kind, t.typesText())
		case c.Maintenance != "":
			why = "maintenance files are not allowed from metadata (a path on the hypervisor)"
		case c.Kind == CheckTCP && !ownHost(c.Address, false):
			why = fmt.Sprintf("address %q: the host must be {ip} (the IP the check guards)", printable(clip(c.Address)))
		case c.Kind == CheckHTTP && !ownHost(c.URL, true):
			why = fmt.Sprintf("url %q: the host must be {ip} (the IP the check guards)", printable(clip(withoutQuery(c.URL))))
		case c.Interval < minInterval:
			why = fmt.Sprintf("interval %s is shorter than the %s this source may use", c.Interval, minInterval)
		}
		if why != "" {
			return fmt.Sprintf("health check %q: %s", c.Name, why)
		}
	}
	return ""
}

// typesText lists the allowed kinds, for a reason.
func (t *HealthTrust) typesText() string {
	if len(t.Types) == 0 {
		return "agent, tcp, http"
	}
	s := make([]string, len(t.Types))
	for i, k := range t.Types {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// ownHost reports whether the host of a tcp check's address (host:port),
// or of an http check's URL, is exactly {ip}.
func ownHost(s string, isURL bool) bool {
	if !isURL {
		host, _, ok := splitHostPort(s)
		return ok && host == placeholder
	}
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return false
	}
	auth := rest[:cmp.Or(strings.IndexAny(rest, "/?#")+1, len(rest)+1)-1]
	port, ok := strings.CutPrefix(auth, placeholder)
	if !ok {
		return false
	}
	if port == "" {
		return true
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(port, ":"), 10, 16)
	return strings.HasPrefix(port, ":") && err == nil && n > 0
}

// withoutQuery is an http check's URL as a reason shows it: without its
// query and fragment, which may hold a secret (as Check.Shown).
func withoutQuery(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}
