package reconcile

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/virtbgp/virtbgp/mapping"
)

// Sources of a domain's routes (Want.Source, DomainRoutes.Source).
const (
	// SourceFile: an entry of the operator's mapping file (or directory).
	SourceFile = "file"
	// SourceMetadata: virtbgp's element in the domain's live metadata
	// (mapping.MetadataNS).
	SourceMetadata = "metadata"
	// SourceNova: Nova's element in the domain's live metadata
	// (mapping.NovaNS).
	SourceNova = "nova"
	// SourceManual: a manual route of the API (internal/manual), not a
	// domain's.
	SourceManual = "manual"
)

// Claims is what a domain's live metadata claims, as the hypervisor
// adapter read and parsed it: an input of Desired like the domain's state.
// A nil *Claims claims nothing (metadata reading off, or the domain is not
// active). The adapter shares one Claims between reads while the metadata
// does not change: it is never modified.
type Claims struct {
	// Metadata is virtbgp's element; nil when the domain has none (or
	// mapping.metadata is off).
	Metadata *Claim
	// Nova is Nova's element; nil when the domain has none (or
	// mapping.nova is off).
	Nova *Claim
}

// Claim is one source's claim for a domain.
type Claim struct {
	// Routes are the routes the element gives, with resolved attributes
	// (the config's defaults or Nova attributes included), before the
	// trust rules.
	Routes []mapping.Route
	// Refused are the routes refused while reading (Nova: a reserved
	// address).
	Refused []mapping.Refusal
	// Err is what is wrong with the element, "" if nothing: an element
	// with a problem gives no routes (Routes is empty).
	Err string
	// Health is, by prefix, how each route follows the VM's health
	// (mapping.Metadata.Health; for Nova, the operator's checks): nil
	// when no route has checks. The routes of virtbgp's element must
	// pass Trust.MetadataHealth.
	Health map[netip.Prefix]*mapping.Health
}

// Trust is what the operator lets each source other than the mapping file
// claim (mapping.metadata.allowed-prefixes ..., mapping.nova....).
type Trust struct {
	Metadata mapping.Allow
	Nova     mapping.Allow
	// MetadataHealth is what the health checks of virtbgp's element may
	// be (mapping.metadata.health): a route whose checks break it is
	// refused. Nova's checks are the operator's and need no such rule.
	MetadataHealth mapping.HealthTrust
	// Manual is what the API's manual routes may be (api.allowed-prefixes
	// ...).
	Manual mapping.Allow
}

// allow returns the Allow of source.
func (t *Trust) allow(source string) *mapping.Allow {
	switch source {
	case SourceNova:
		return &t.Nova
	case SourceManual:
		return &t.Manual
	}
	return &t.Metadata
}

// DomainRoutes is where one domain's routes come from, and what was
// refused: the per-domain result of Resolve, for logs, status and metrics.
type DomainRoutes struct {
	// Source is SourceFile, SourceMetadata or SourceNova; "" when nothing
	// names the domain.
	Source string
	// VM is the mapping file's entry, with SourceFile.
	VM string
	// Err is the metadata's problem (the element gives no routes), with
	// SourceMetadata or SourceNova.
	Err string
	// Refused are the claims of the source that are not announced, each
	// with the reason: outside what the operator allows the source, a
	// prefix the mapping file gives to an entry, a prefix another domain
	// holds, a reserved address. Sorted by prefix.
	Refused []mapping.Refusal
	// Ignored names a source whose element the domain has but that a
	// stronger source overrides (a file entry over metadata, metadata
	// over Nova); "" if none.
	Ignored string
}

// Equal reports whether two records say the same.
func (d DomainRoutes) Equal(o DomainRoutes) bool {
	return d.Source == o.Source && d.VM == o.VM && d.Err == o.Err && d.Ignored == o.Ignored &&
		slices.Equal(d.Refused, o.Refused)
}

// Resolution is what Resolve decides.
type Resolution struct {
	// Want are the routes to announce, by prefix.
	Want map[netip.Prefix]Want
	// Domains are, by UUID, the domains that a source names or whose
	// metadata has a problem.
	Domains map[string]DomainRoutes
}

// Reasons a claim is refused (besides mapping.Allow's).
const (
	reasonFileOwns  = "the mapping file gives this prefix to %q"
	reasonHeldBy    = "domain %q (%s) holds this prefix from %s"
	reasonClaimedBy = "domain %q (%s) also claims it, and wins (%s)"
	reasonManual    = "a manual route of the API holds this prefix"
	tieIncumbent    = "it announces it already"
	tieRank         = "its state ranks higher"
	tieLowerUUID    = "its UUID is lower"
)

// Resolve computes the routes to announce and where each domain's routes
// come from, as a pure function of the domains (with their Claims), the
// mapping file, the policy (with the trust rules) and the routes announced
// now (prev, which only breaks ties between metadata claims) and the
// manual routes of the API. The rules, in docs/metadata.md ("Precedence"):
//
//   - A domain that the mapping file maps (by name or UUID, the UUID pin
//     holding) gets the file's routes and nothing from its metadata.
//   - Else its virtbgp element, if it has one (valid or not: an element
//     with a problem gives nothing, and Nova's is not used instead).
//   - Else Nova's element.
//   - A metadata or Nova route must pass the source's mapping.Allow, and
//     its prefix must not be one that the mapping file maps (to any entry,
//     on this host or not): the file wins.
//   - Two domains claiming one prefix from metadata or Nova: the one that
//     announces it now keeps it, so that a new claim never withdraws a
//     route; else the one whose state ranks higher (running, paused-keep,
//     switchover, standby); else the one with the lower UUID. The others'
//     claims are refused.
//   - A manual route is announced if it passes Trust.Manual and the
//     mapping file does not map its prefix (the API refuses such a route;
//     a mapping reloaded since wins). It wins over metadata and Nova
//     claims, which are refused.
//
// Health (the health monitor's verdicts) applies to the file routes whose
// entry has checks: a failing route is withdrawn, or depreferenced, as its
// mapping.Health says. An anycast prefix that several local domains map
// goes to a healthy one before a depreferenced one, then by state rank,
// then to the one announcing it now, then to the lower UUID.
//
// Maintenance (the operator's, through the API) applies to every route of
// a domain in it, or to the one route named, whatever its source and
// whether or not it has checks: a file route is withdrawn, or
// depreferenced when its entry's health says so (its Want is then
// HealthFailing with the maintenance as the reason); a metadata or Nova
// claim is not made.
func Resolve(domains []Domain, m *mapping.Mapping, p Policy, manual []mapping.Route, prev map[netip.Prefix]Want, health Health, maint Maintenance) Resolution {
	// Sized for the routes announced now: a pass that changes nothing
	// grows no map.
	res := Resolution{Want: make(map[netip.Prefix]Want, len(prev)), Domains: make(map[string]DomainRoutes, len(domains))}
	domains = slices.Clone(domains)
	slices.SortFunc(domains, func(a, b Domain) int { return cmp.Compare(a.UUID, b.UUID) })
	// The metadata and Nova claims of serving domains: the first claim of
	// each prefix indexed in claims (a Want is too big to be a map value
	// without an allocation each), any others (a conflict, rare) in
	// rivals.
	var wants []Want
	claims := make(map[netip.Prefix]int, len(prev))
	var rivals map[netip.Prefix][]Want
	for _, d := range domains {
		why, serves := serving(d, p)
		vm, mapped := m.LookupVM(d.Name, d.UUID)
		if key, routes := vm.Key, vm.Routes; mapped {
			dr := DomainRoutes{Source: SourceFile, VM: key}
			if c := d.Claims; c != nil && (c.Metadata != nil || c.Nova != nil) {
				dr.Ignored = SourceMetadata
				if c.Metadata == nil {
					dr.Ignored = SourceNova
				}
			}
			res.Domains[d.UUID] = dr
			if serves {
				for _, r := range routes {
					var hstate, hreason string
					ok := true
					if why, in := maint.In(d.UUID, r.Prefix); in {
						r, hstate, hreason, ok = applyMaintenance(r, vm.Health[r.Prefix], why)
					} else {
						r, hstate, hreason, ok = applyHealth(r, d, vm.Health[r.Prefix], health)
					}
					if !ok {
						continue
					}
					why := why
					if why == WhyRunning && d.Migration == MigrationLeaving && vm.Anycast[r.Prefix] {
						why = WhyLeaving
					}
					res.add(Want{Route: adjust(r, why, p), VM: key, Domain: d.Name, UUID: d.UUID, Why: why, Source: SourceFile,
						Health: hstate, HealthReason: hreason}, prev[r.Prefix])
				}
			}
			continue
		}
		source, c := d.Claims.pick()
		if c == nil {
			continue
		}
		dr := DomainRoutes{Source: source, Err: c.Err, Refused: slices.Clone(c.Refused)}
		if source == SourceMetadata && d.Claims.Nova != nil {
			dr.Ignored = SourceNova
		}
		accepted, refused := claimRoutes(d, source, c, m, &p.Trust)
		dr.Refused = append(dr.Refused, refused...)
		for _, r := range accepted {
			if _, in := maint.In(d.UUID, r.Prefix); serves && !in {
				r, hstate, hreason, ok := applyHealth(r, d, c.Health[r.Prefix], health)
				if !ok {
					continue
				}
				w := Want{Route: adjust(r, why, p), Domain: d.Name, UUID: d.UUID, Why: why, Source: source,
					Health: hstate, HealthReason: hreason}
				if _, dup := claims[r.Prefix]; !dup {
					if wants == nil {
						wants = make([]Want, 0, len(prev))
					}
					claims[r.Prefix] = len(wants)
					wants = append(wants, w)
				} else {
					if rivals == nil {
						rivals = map[netip.Prefix][]Want{}
					}
					rivals[r.Prefix] = append(rivals[r.Prefix], w)
				}
			}
		}
		res.Domains[d.UUID] = dr
	}
	for _, r := range manual {
		if _, named := m.Owner(r.Prefix); named {
			continue
		}
		if _, refused := p.Trust.Manual.Filter("", []mapping.Route{r}); len(refused) > 0 {
			continue
		}
		if _, held := res.Want[r.Prefix]; !held {
			res.Want[r.Prefix] = Want{Route: r, Why: WhyManual, Source: SourceManual}
		}
	}
	for prefix, i := range claims {
		ws := wants[i : i+1 : i+1]
		if more := rivals[prefix]; more != nil {
			ws = append(ws, more...)
		}
		if held, ok := res.Want[prefix]; ok && held.Source == SourceManual {
			for _, w := range ws {
				res.refuse(w, reasonManual)
			}
			continue
		}
		if held, ok := res.Want[prefix]; ok {
			// Cannot happen (the file's prefixes were refused above);
			// kept so that no claim ever displaces a file route.
			for _, w := range ws {
				res.refuse(w, fmt.Sprintf(reasonHeldBy, held.Domain, held.UUID, held.Source))
			}
			continue
		}
		win := 0
		for i := 1; i < len(ws); i++ {
			if beats(ws[i], ws[win], prev[prefix]) != "" {
				win = i
			}
		}
		res.Want[prefix] = ws[win]
		for i, w := range ws {
			if i != win {
				res.refuse(w, fmt.Sprintf(reasonClaimedBy, ws[win].Domain, ws[win].UUID, whyWins(ws[win], w, prev[prefix])))
			}
		}
	}
	for uuid, dr := range res.Domains {
		slices.SortStableFunc(dr.Refused, func(a, b mapping.Refusal) int { return a.Prefix.Compare(b.Prefix) })
		res.Domains[uuid] = dr
	}
	return res
}

// claimRoutes returns the routes of c, source's claim for domain d, that
// may be announced, and the others with the reason: a route must pass the
// source's mapping.Allow, its checks (from virtbgp's element) the
// operator's mapping.HealthTrust, and its prefix must not be one that the
// mapping file maps. It allocates only for a refusal.
func claimRoutes(d Domain, source string, c *Claim, m *mapping.Mapping, t *Trust) (accepted []mapping.Route, refused []mapping.Refusal) {
	accepted, refused = t.allow(source).Filter(d.Name, c.Routes)
	if source == SourceMetadata && len(c.Health) > 0 {
		var unhealthy []mapping.Refusal
		accepted, unhealthy = t.MetadataHealth.Filter(d.Name, accepted, c.Health)
		refused = append(refused, unhealthy...)
	}
	var owned int // how many of accepted the file maps
	for _, r := range accepted {
		if vm, ok := m.Owner(r.Prefix); ok {
			refused = append(refused, mapping.Refusal{Domain: d.Name, Prefix: r.Prefix, Reason: fmt.Sprintf(reasonFileOwns, vm)})
			owned++
		}
	}
	if owned > 0 {
		accepted = slices.DeleteFunc(slices.Clone(accepted), func(r mapping.Route) bool {
			_, ok := m.Owner(r.Prefix)
			return ok
		})
	}
	return accepted, refused
}

// Checked returns the health checks of a domain's routes as Resolve applies
// them: for a domain that the mapping file maps, its entry's key and
// routes with their health; else, for the source that gives its routes
// (Claims.pick), "" and the claim's routes that Resolve may announce (the
// trust rules passed, not the file's) with their health. The health
// monitor runs exactly these checks, so that no check runs for a route
// that is refused (a check of a claimed address outside the allowed pools
// would probe it from the hypervisor).
func Checked(d Domain, m *mapping.Mapping, t *Trust) (vm string, routes []mapping.Route, health map[netip.Prefix]*mapping.Health) {
	if e, ok := m.LookupVM(d.Name, d.UUID); ok {
		return e.Key, e.Routes, e.Health
	}
	source, c := d.Claims.pick()
	if c == nil || len(c.Health) == 0 {
		return "", nil, nil
	}
	routes, _ = claimRoutes(d, source, c, m, t)
	return "", routes, c.Health
}

// pick returns the source that a domain's metadata gives its routes from,
// and its claim: virtbgp's element, else Nova's.
func (c *Claims) pick() (string, *Claim) {
	switch {
	case c == nil:
		return "", nil
	case c.Metadata != nil:
		return SourceMetadata, c.Metadata
	case c.Nova != nil:
		return SourceNova, c.Nova
	}
	return "", nil
}

// beats says why claim a wins over claim b for a prefix announced now as
// held, "" if it does not: the holder, then the state's rank, then the
// lower UUID.
func beats(a, b, held Want) string {
	aHolds := held.UUID == a.UUID && held.Source == a.Source
	bHolds := held.UUID == b.UUID && held.Source == b.Source
	switch {
	case aHolds != bHolds:
		if aHolds {
			return tieIncumbent
		}
		return ""
	case rank(a.Why) != rank(b.Why):
		if rank(a.Why) > rank(b.Why) {
			return tieRank
		}
		return ""
	case a.UUID < b.UUID:
		return tieLowerUUID
	}
	return ""
}

// whyWins says why claim win beat claim lost, in words that stay the same
// from the pass that decides to the passes after it, when win announces the
// prefix: holding it is the reason only when the state and the UUID alone
// would have chosen lost.
func whyWins(win, lost, held Want) string {
	holds := held.UUID == win.UUID && held.Source == win.Source
	switch {
	case holds && (rank(win.Why) < rank(lost.Why) || rank(win.Why) == rank(lost.Why) && win.UUID > lost.UUID):
		return tieIncumbent
	case rank(win.Why) != rank(lost.Why):
		return tieRank
	}
	return tieLowerUUID
}

// add puts a file route in res. Should two domains get one prefix from
// the file (an anycast prefix, or one domain migrating in while another
// runs), a healthy one wins over a depreferenced one, then a running one
// over a standby one, then the one that announces it now (held), then the
// first (domains come sorted by UUID).
func (res *Resolution) add(w Want, held Want) {
	if cur, dup := res.Want[w.Route.Prefix]; dup {
		cf, wf := cur.Health == HealthFailing, w.Health == HealthFailing
		switch {
		case cf != wf:
			if wf {
				return
			}
		case rank(cur.Why) != rank(w.Why):
			if rank(cur.Why) > rank(w.Why) {
				return
			}
		case held.UUID == w.UUID && held.Source == w.Source:
		default:
			return
		}
	}
	res.Want[w.Route.Prefix] = w
}

// refuse records a refused claim of w's domain.
func (res *Resolution) refuse(w Want, reason string) {
	dr := res.Domains[w.UUID]
	dr.Refused = append(dr.Refused, mapping.Refusal{Domain: w.Domain, Prefix: w.Route.Prefix, Reason: reason})
	res.Domains[w.UUID] = dr
}

// adjust adds the prepends of a migration role to a route.
func adjust(r mapping.Route, why string, p Policy) mapping.Route {
	switch why {
	case WhyStandby:
		r = r.Clone()
		r.ASPathPrepend = addPrepend(r.ASPathPrepend, p.StandbyPrepend)
	case WhySwitchover, WhyLeaving:
		r = r.Clone()
		r.ASPathPrepend = addPrepend(r.ASPathPrepend, SwitchoverPrepend)
	}
	return r
}

// permits reports whether the policy lets w be announced with what the
// mapping file says: a file route must be one the mapping names; a route
// of another source must pass its Allow and not be the file's. The last
// guard before the speaker.
func permits(m *mapping.Mapping, p *Policy, w Want) bool {
	_, named := m.Owner(w.Route.Prefix)
	switch w.Source {
	case SourceFile, "":
		return named
	case SourceMetadata, SourceNova, SourceManual:
		_, refused := p.Trust.allow(w.Source).Filter(w.Domain, []mapping.Route{w.Route})
		return !named && len(refused) == 0
	}
	return false
}
