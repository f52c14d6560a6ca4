package bgp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"google.golang.org/protobuf/proto"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

// The export policy: one GoBGP global export policy whose statements each
// apply to one peer through a neighbor-set condition (GoBGP has no per-peer
// export policy outside route-server mode). docs/design.md, "Next hops of
// the other family", has what GoBGP does with it.
const exportPolicyName = "virtbgp-export"

// NextHopFunc returns the address of family fam that this host has on the
// interface facing peer: the next hop "self" of that family on a session
// whose transport is the other family. It returns an error saying why when
// there is none.
type NextHopFunc func(peer netip.Addr, fam config.Family) (netip.Addr, error)

// exportPlan is the export policy for a set of peers: GoBGP's defined sets
// and statements, and the families that are not sent to a peer for want of
// a next hop.
type exportPlan struct {
	sets    []*api.DefinedSet
	stmts   []*api.Statement
	dropped []DroppedFamily
	// nextHops: the next hop "self" of the other family per peer, as used.
	nextHops map[netip.Addr]map[config.Family]netip.Addr
}

// DroppedFamily is a family a peer's session carries whose routes with next
// hop "self" are not sent to it, and why.
type DroppedFamily struct {
	Peer   netip.Addr
	Family config.Family
	Reason string
}

// transportFamily is the family of the session's own addresses.
func transportFamily(p config.Peer) config.Family {
	if p.Address.Unmap().Is4() {
		return config.FamilyIPv4
	}
	return config.FamilyIPv6
}

// setName makes a GoBGP defined-set or statement name for peer a.
func setName(a netip.Addr, kind string) string {
	return "virtbgp-" + strings.NewReplacer(":", "_", "%", "-").Replace(a.String()) + "-" + kind
}

// planExport builds the export policy of peers, originating from AS asn;
// nh finds the next hops of the other family where the config gives none.
// It is pure but for nh. Per peer, in this order (a reject ends the
// evaluation; the other statements change the route and go on):
//
//  1. export.families: routes of the other families are rejected.
//  2. export.prefixes: per family, routes not within the allow-list are
//     rejected (all of a family when the list has none of it).
//  3. For each family carried other than the transport's: routes with
//     next hop "self" (which GoBGP has set to the session's address of the
//     wrong family) get next-hop-ipv4/-ipv6 or nh's address; when there is
//     none they are rejected, and the family is reported dropped.
//  4. Communities and large communities added, the local AS prepended,
//     MED replaced.
func planExport(asn uint32, peers []config.Peer, nh NextHopFunc) exportPlan {
	var pl exportPlan
	pl.nextHops = map[netip.Addr]map[config.Family]netip.Addr{}
	seen := map[netip.Addr]bool{}
	for _, p := range peers {
		if !p.Address.IsValid() {
			continue // an unnumbered peer not resolved: not in GoBGP
		}
		a := p.Address.Unmap()
		// GoBGP exits the process when a policy it is given has a
		// statement name twice (RoutingPolicy.Reset calls its logger's
		// Fatal), so a peer given twice (which AddPeer refuses later) must
		// not make its statements twice.
		if seen[a] {
			continue
		}
		seen[a] = true
		nset := setName(a, "peer")
		pl.sets = append(pl.sets, &api.DefinedSet{
			DefinedType: api.DefinedType_NEIGHBOR,
			Name:        nset,
			List:        []string{netip.PrefixFrom(a, a.BitLen()).String()},
		})
		cond := func() *api.Conditions {
			return &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: nset}}
		}
		stmt := func(kind string, c *api.Conditions, act *api.Actions) {
			pl.stmts = append(pl.stmts, &api.Statement{Name: setName(a, kind), Conditions: c, Actions: act})
		}
		reject := &api.Actions{RouteAction: api.RouteAction_REJECT}
		e := p.Export
		carried := families(p)

		// 1. Families.
		if e.Families != nil {
			var off []*api.Family
			for _, f := range carried {
				if !slices.Contains(e.Families, f) {
					off = append(off, apiFamily(f))
				}
			}
			if len(off) > 0 {
				c := cond()
				c.AfiSafiIn = off
				stmt("families", c, reject)
			}
		}

		// 2. Prefix allow-list.
		if e.Prefixes != nil {
			for _, f := range carried {
				var list []*api.Prefix
				for _, pfx := range e.Prefixes {
					if pfx.Addr().Is4() != (f == config.FamilyIPv4) {
						continue
					}
					list = append(list, &api.Prefix{
						IpPrefix:      pfx.String(),
						MaskLengthMin: uint32(pfx.Bits()),
						MaskLengthMax: uint32(pfx.Addr().BitLen()),
					})
				}
				c := cond()
				c.AfiSafiIn = []*api.Family{apiFamily(f)}
				if len(list) > 0 {
					ps := setName(a, "prefixes-"+string(f))
					pl.sets = append(pl.sets, &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: ps, Prefixes: list})
					c.PrefixSet = &api.MatchSet{Type: api.MatchSet_INVERT, Name: ps}
				}
				stmt("prefixes-"+string(f), c, reject)
			}
		}

		// 3. Next hop "self" of the other family.
		for _, f := range carried {
			// Unnumbered: GoBGP's "self" is the interface's link-local
			// address, for IPv4 routes too (RFC 8950).
			if f == transportFamily(p) || p.Interface != "" {
				continue
			}
			c := cond()
			c.AfiSafiIn = []*api.Family{apiFamily(f)}
			// After GoBGP's next hop self the next hop is the session's
			// own address: IPv4 (IPv4-mapped) for IPv6 routes over IPv4,
			// IPv6 for IPv4 routes over IPv6. An explicit next hop of the
			// route's own family does not match.
			c.NextHopInList = []string{"0.0.0.0/0"}
			if f == config.FamilyIPv4 {
				c.NextHopInList = []string{"::/0"}
			}
			addr := p.NextHopIPv6
			if f == config.FamilyIPv4 {
				addr = p.NextHopIPv4
			}
			var why error
			if !addr.IsValid() && nh != nil {
				addr, why = nh(a, f)
			} else if !addr.IsValid() {
				why = fmt.Errorf("no next-hop-%s configured", f)
			}
			if !addr.IsValid() {
				pl.dropped = append(pl.dropped, DroppedFamily{Peer: a, Family: f, Reason: why.Error()})
				stmt("nexthop-"+string(f), c, reject)
				continue
			}
			if pl.nextHops[a] == nil {
				pl.nextHops[a] = map[config.Family]netip.Addr{}
			}
			pl.nextHops[a][f] = addr
			stmt("nexthop-"+string(f), c, &api.Actions{Nexthop: &api.NexthopAction{Address: addr.String()}})
		}

		// 4. Attributes.
		act := &api.Actions{}
		if len(e.Communities) > 0 {
			cs := make([]string, len(e.Communities))
			for i, c := range e.Communities {
				cs[i] = fmt.Sprintf("%d:%d", c>>16, c&0xffff)
			}
			act.Community = &api.CommunityAction{Type: api.CommunityAction_ADD, Communities: cs}
		}
		if len(e.LargeCommunities) > 0 {
			cs := make([]string, len(e.LargeCommunities))
			for i, c := range e.LargeCommunities {
				cs[i] = largeString(c)
			}
			act.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_ADD, Communities: cs}
		}
		if e.ASPathPrepend > 0 {
			act.AsPrepend = &api.AsPrependAction{Asn: asn, Repeat: uint32(e.ASPathPrepend)}
		}
		if e.MED != nil {
			act.Med = &api.MedAction{Type: api.MedAction_REPLACE, Value: int64(*e.MED)}
		}
		if act.Community != nil || act.LargeCommunity != nil || act.AsPrepend != nil || act.Med != nil {
			stmt("attributes", cond(), act)
		}
	}
	return pl
}

func largeString(c mapping.LargeCommunity) string {
	return fmt.Sprintf("%d:%d:%d", c.GlobalAdmin, c.LocalData1, c.LocalData2)
}

// importPolicy makes the speaker import nothing from its peers (see
// setImportPolicy).
func importPolicy() *api.Policy {
	return &api.Policy{
		Name: importPolicyName,
		Statements: []*api.Statement{{
			Name:       acceptLocalStmtName,
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}
}

// policiesRequest is the whole of the speaker's GoBGP policy with the
// export policy of pl: SetPolicies replaces every defined set and policy
// and keeps the assignments.
func policiesRequest(pl exportPlan) *api.SetPoliciesRequest {
	return &api.SetPoliciesRequest{
		DefinedSets: pl.sets,
		Policies:    []*api.Policy{importPolicy(), {Name: exportPolicyName, Statements: pl.stmts}},
	}
}

// samePlan reports whether a and b make the same GoBGP policy.
func samePlan(a, b exportPlan) bool {
	return proto.Equal(policiesRequest(a), policiesRequest(b))
}

// sessionEqual reports whether a and b configure the same session: they
// may differ in what only the export policy uses, and in a receive-limit
// that only warns (GoBGP gets it only with the action restart).
func sessionEqual(a, b config.Peer) bool {
	a.Export, b.Export = config.PeerExport{}, config.PeerExport{}
	a.NextHopIPv4, b.NextHopIPv4 = netip.Addr{}, netip.Addr{}
	a.NextHopIPv6, b.NextHopIPv6 = netip.Addr{}, netip.Addr{}
	if a.ReceiveLimitAction != config.ReceiveRestart && b.ReceiveLimitAction != config.ReceiveRestart {
		a.ReceiveLimit, b.ReceiveLimit = 0, 0
		a.ReceiveLimitAction, b.ReceiveLimitAction = "", ""
	}
	return reflect.DeepEqual(a, b)
}

// setExportPolicy installs the export policy of the configured peers at
// start: the policies and the global export assignment (default accept).
// Call with mu held.
func (s *Speaker) setExportPolicy(ctx context.Context) error {
	pl := planExport(s.cfg.ASN, s.cfg.Peers, s.nextHop)
	if err := s.srv.SetPolicies(ctx, policiesRequest(pl)); err != nil {
		return fmt.Errorf("set export policy %s: %w", exportPolicyName, err)
	}
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_EXPORT,
		Policies:      []*api.Policy{{Name: exportPolicyName}},
		DefaultAction: api.RouteAction_ACCEPT,
	}}); err != nil {
		return fmt.Errorf("assign global export policy: %w", err)
	}
	s.export = pl
	s.logDropped(nil, pl.dropped)
	return nil
}

// updateExport makes the export policy that of the configured peers
// (s.cfg.Peers) and the host's addresses now. Where it changed, each
// established peer not in fresh (fresh peers were just added and get the
// new policy with their first UPDATEs) is sent exactly the routes whose
// export to it changed, and no other peer anything (sendChanged); no
// session is reset. Call with mu held.
func (s *Speaker) updateExport(ctx context.Context, fresh map[netip.Addr]bool) error {
	pl := planExport(s.cfg.ASN, s.cfg.Peers, s.nextHop)
	if samePlan(pl, s.export) {
		return nil
	}
	var check []netip.Addr
	before := map[netip.Addr]map[string][]byte{}
	for _, p := range s.cfg.Peers {
		a := p.Address.Unmap()
		if fresh[a] || !s.established(a) {
			continue
		}
		out, err := s.adjOut(ctx, p)
		if err != nil {
			return err
		}
		before[a] = out
		check = append(check, a)
	}
	if err := s.srv.SetPolicies(ctx, policiesRequest(pl)); err != nil {
		return fmt.Errorf("set export policy %s: %w", exportPolicyName, err)
	}
	old := s.export
	s.export = pl
	s.logDropped(old.dropped, pl.dropped)
	var errs []error
	changes := map[netip.Addr]adjOutChange{}
	for _, p := range s.cfg.Peers {
		a := p.Address.Unmap()
		if _, ok := before[a]; !ok {
			continue
		}
		out, err := s.adjOut(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changes[a] = diffAdjOut(before[a], out)
	}
	if err := s.sendChanged(ctx, pl, check, changes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// adjOutChange is how a peer's Adj-RIB-Out changed: the prefixes it no
// longer gets, those it gets with other attributes or newly, and whether
// that is every route it gets now (all: a soft reset out sends exactly
// those).
type adjOutChange struct {
	withdrawn, updated []netip.Prefix
	all                bool
}

func (c adjOutChange) count() int { return len(c.withdrawn) + len(c.updated) }

// diffAdjOut compares a peer's Adj-RIB-Out before (a) and after (b).
func diffAdjOut(a, b map[string][]byte) adjOutChange {
	var c adjOutChange
	for k, v := range b {
		if w, ok := a[k]; !ok || !bytes.Equal(v, w) {
			if pfx, err := netip.ParsePrefix(k); err == nil {
				c.updated = append(c.updated, pfx)
			}
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			if pfx, err := netip.ParsePrefix(k); err == nil {
				c.withdrawn = append(c.withdrawn, pfx)
			}
		}
	}
	slices.SortFunc(c.updated, netip.Prefix.Compare)
	slices.SortFunc(c.withdrawn, netip.Prefix.Compare)
	c.all = len(c.withdrawn) == 0 && len(c.updated) == len(b) && len(b) > 0
	return c
}

// The markers of sendChanged: large communities of the local AS that
// nothing else uses, on a path only while a transitional policy is in
// force (none reaches a peer).
const (
	markerLocal1 = math.MaxUint32
	markerLocal2 = math.MaxUint32
	markerSet    = "virtbgp-resend-marker"
)

// sendChanged sends each established peer (est) exactly the routes whose
// export to it changed (changes, after the new policy pl is in force) and
// sends the other peers nothing.
//
// GoBGP cannot do it alone. It keeps no Adj-RIB-Out: a soft reset out
// sends a peer all of its routes again (server.go softResetOut), so it is
// used only for a peer all of whose routes changed. A route is sent when
// its best path is replaced, to every peer (propagateUpdateToNeighbors),
// unless the new path is equal (Update.GetChanges); through the export
// policy in force, which decides for the new path and, when that is
// rejected, for the old one: a withdrawal if the old passes, nothing if
// both are rejected (filterpath). So, holding mu (no route changes in
// between), for the union of the routes to send:
//
//  1. a transitional policy: per peer sent routes one by one, of its
//     routes to withdraw, the marked path is rejected and the unmarked
//     (old) one accepted; its routes not to send, and all of them for
//     every other established peer, rejected; the marker removed; then pl;
//     each route is replaced by its path with the marker: each peer gets
//     its withdrawal or its new route, the others nothing (both paths
//     rejected);
//  2. a policy rejecting the union for every established peer; the
//     routes are replaced by their original paths: nothing is sent;
//  3. pl again, and a soft reset out of each peer all of whose routes
//     changed.
func (s *Speaker) sendChanged(ctx context.Context, pl exportPlan, est []netip.Addr, changes map[netip.Addr]adjOutChange) error {
	union := map[netip.Prefix]bool{}
	var reset []netip.Addr
	for _, a := range est {
		c := changes[a]
		switch {
		case c.count() == 0:
		case c.all:
			reset = append(reset, a)
		default:
			for _, pfx := range slices.Concat(c.withdrawn, c.updated) {
				union[pfx] = true
			}
		}
	}
	prefixes := slices.SortedFunc(maps.Keys(union), netip.Prefix.Compare)
	var errs []error
	if len(prefixes) > 0 {
		errs = append(errs, s.replaceRoutes(ctx, pl, est, changes, prefixes))
	}
	for _, a := range reset {
		if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{
			Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_OUT,
		}); err != nil {
			errs = append(errs, fmt.Errorf("soft reset out of peer %s: %w", a, err))
		}
	}
	for _, a := range est {
		c := changes[a]
		if c.count() > 0 {
			s.log.Info("peer export policy changed; changed routes sent", "peer", a,
				"routes_changed", c.count(), "routes_withdrawn", len(c.withdrawn))
		}
	}
	return errors.Join(errs...)
}

// replaceRoutes is steps 1 and 2 of sendChanged, and installs pl.
func (s *Speaker) replaceRoutes(ctx context.Context, pl exportPlan, est []netip.Addr, changes map[netip.Addr]adjOutChange, prefixes []netip.Prefix) error {
	marker := fmt.Sprintf("%d:%d:%d", s.cfg.ASN, uint32(markerLocal1), uint32(markerLocal2))
	final := func() error {
		if err := s.srv.SetPolicies(ctx, policiesRequest(pl)); err != nil {
			return fmt.Errorf("set export policy %s: %w", exportPolicyName, err)
		}
		return nil
	}

	// Step 1.
	tr := exportPlan{sets: append(slices.Clone(pl.sets), &api.DefinedSet{
		DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: markerSet, List: []string{marker},
	})}
	silent := exportPlan{sets: slices.Clone(pl.sets)}
	for _, a := range est {
		c := changes[a]
		sendTo := c.count() > 0 && !c.all
		skip := map[netip.Prefix]bool{}
		for _, pfx := range slices.Concat(c.withdrawn, c.updated) {
			skip[pfx] = sendTo
		}
		var quiet []netip.Prefix
		for _, pfx := range prefixes {
			if !skip[pfx] {
				quiet = append(quiet, pfx)
			}
		}
		nset := setName(a, "resend-peer")
		peerSet := &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: nset,
			List: []string{netip.PrefixFrom(a, a.BitLen()).String()}}
		tr.sets = append(tr.sets, peerSet)
		silent.sets = append(silent.sets, peerSet)
		if sendTo {
			tr.addPrefixStmts(a, nset, "resend-withdraw", c.withdrawn, markerSet, api.RouteAction_REJECT)
			tr.addPrefixStmts(a, nset, "resend-withdraw-old", c.withdrawn, "", api.RouteAction_ACCEPT)
		}
		tr.addPrefixStmts(a, nset, "resend-quiet", quiet, "", api.RouteAction_REJECT)
		silent.addPrefixStmts(a, nset, "resend-quiet", prefixes, "", api.RouteAction_REJECT)
	}
	tr.stmts = append(tr.stmts, &api.Statement{
		Name:       "virtbgp-resend-unmark",
		Conditions: &api.Conditions{LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_ANY, Name: markerSet}},
		Actions:    &api.Actions{LargeCommunity: &api.CommunityAction{Type: api.CommunityAction_REMOVE, Communities: []string{marker}}},
	})
	tr.stmts = append(tr.stmts, pl.stmts...)
	silent.stmts = append(silent.stmts, pl.stmts...)
	if err := s.srv.SetPolicies(ctx, policiesRequest(tr)); err != nil {
		return errors.Join(fmt.Errorf("set the transitional export policy: %w", err), final())
	}
	// On an error, the routes marked so far are restored (step 2): no
	// marker may stay under pl, which does not remove it.
	var errs []error
	originals := make([]*api.Path, 0, len(prefixes))
	for _, pfx := range prefixes {
		var saved *api.Path
		err := s.srv.ListPath(ctx, &api.ListPathRequest{
			TableType: api.TableType_GLOBAL, Family: family(pfx),
			Prefixes:         []*api.TableLookupPrefix{{Prefix: pfx.String()}},
			EnableNlriBinary: true, EnableAttributeBinary: true,
		}, func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				if saved == nil || p.GetBest() {
					saved = p
				}
			}
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("read the route %s to send: %w", pfx, err))
			break
		}
		if saved == nil {
			continue // withdrawn meanwhile: nothing to do
		}
		orig := &api.Path{Family: family(pfx), NlriBinary: saved.GetNlriBinary(), PattrsBinary: saved.GetPattrsBinary()}
		marked, err := withMarker(orig, s.cfg.ASN)
		if err == nil {
			_, err = s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: marked})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("send %s: %w", pfx, err))
			break
		}
		originals = append(originals, orig)
	}

	// Step 2.
	if err := s.srv.SetPolicies(ctx, policiesRequest(silent)); err != nil {
		errs = append(errs, fmt.Errorf("set the transitional export policy: %w", err))
	}
	for _, p := range originals {
		if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
			errs = append(errs, fmt.Errorf("restore a route after sending it: %w", err))
		}
	}
	return errors.Join(append(errs, final())...)
}

// addPrefixStmts adds to pl, for peer a (neighbor set nset), one
// statement per family of list with action act, for the paths that carry
// the marker where marked names its set.
func (pl *exportPlan) addPrefixStmts(a netip.Addr, nset, kind string, list []netip.Prefix, marked string, act api.RouteAction) {
	for _, f := range []config.Family{config.FamilyIPv4, config.FamilyIPv6} {
		var ps []*api.Prefix
		for _, pfx := range list {
			if pfx.Addr().Is4() == (f == config.FamilyIPv4) {
				ps = append(ps, &api.Prefix{IpPrefix: pfx.String(), MaskLengthMin: uint32(pfx.Bits()), MaskLengthMax: uint32(pfx.Bits())})
			}
		}
		if len(ps) == 0 {
			continue
		}
		name := setName(a, kind+"-"+string(f))
		pl.sets = append(pl.sets, &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name, Prefixes: ps})
		c := &api.Conditions{
			NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: nset},
			PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: name},
		}
		if marked != "" {
			c.LargeCommunitySet = &api.MatchSet{Type: api.MatchSet_ANY, Name: marked}
		}
		pl.stmts = append(pl.stmts, &api.Statement{Name: name, Conditions: c, Actions: &api.Actions{RouteAction: act}})
	}
}

// withMarker returns path p with the marker of sendChanged added to its
// large communities.
func withMarker(p *api.Path, asn uint32) (*api.Path, error) {
	mark := bgp.NewLargeCommunity(asn, markerLocal1, markerLocal2)
	out := &api.Path{Family: p.Family, NlriBinary: p.NlriBinary}
	found := false
	for _, b := range p.PattrsBinary {
		a, err := bgp.GetPathAttribute(b)
		if err == nil {
			err = a.DecodeFromBytes(b)
		}
		if err != nil {
			return nil, fmt.Errorf("decode a path attribute: %w", err)
		}
		if lc, ok := a.(*bgp.PathAttributeLargeCommunities); ok {
			a = bgp.NewPathAttributeLargeCommunities(append(slices.Clone(lc.Values), mark))
			found = true
		}
		enc, err := a.Serialize()
		if err != nil {
			return nil, fmt.Errorf("encode a path attribute: %w", err)
		}
		out.PattrsBinary = append(out.PattrsBinary, enc)
	}
	if !found {
		enc, err := bgp.NewPathAttributeLargeCommunities([]*bgp.LargeCommunity{mark}).Serialize()
		if err != nil {
			return nil, fmt.Errorf("encode the marker: %w", err)
		}
		out.PattrsBinary = append(out.PattrsBinary, enc)
	}
	return out, nil
}

// established reports whether the session with a is up. Call with mu held.
func (s *Speaker) established(a netip.Addr) bool {
	s.peerMu.Lock()
	defer s.peerMu.Unlock()
	t := s.peers[a]
	return t != nil && t.state == StateEstablished
}

// adjOut returns what GoBGP would send peer p now (its Adj-RIB-Out through
// the export policy): each prefix with its attributes' encoding.
func (s *Speaker) adjOut(ctx context.Context, p config.Peer) (map[string][]byte, error) {
	a := p.Address.Unmap().String()
	out := map[string][]byte{}
	for _, f := range families(p) {
		var ferr error
		err := s.srv.ListPath(ctx, &api.ListPathRequest{
			TableType: api.TableType_ADJ_OUT, Name: a, Family: apiFamily(f),
		}, func(d *api.Destination) {
			for _, path := range d.GetPaths() {
				b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&api.Path{Pattrs: path.GetPattrs()})
				if err != nil {
					ferr = err
					return
				}
				out[d.GetPrefix()] = b
			}
		})
		if err == nil {
			err = ferr
		}
		if err != nil {
			return nil, fmt.Errorf("list the routes sent to %s (%s): %w", a, f, err)
		}
	}
	return out, nil
}

// logDropped logs the families newly dropped for want of a next hop, and
// those sent again.
func (s *Speaker) logDropped(old, cur []DroppedFamily) {
	key := func(d DroppedFamily) string { return d.Peer.String() + " " + string(d.Family) }
	was := map[string]bool{}
	for _, d := range old {
		was[key(d)] = true
	}
	is := map[string]bool{}
	for _, d := range cur {
		is[key(d)] = true
		if !was[key(d)] {
			s.log.Error("routes of a family are not sent to a peer: no next hop of that family",
				"peer", d.Peer, "family", d.Family, "error", d.Reason,
				"hint", "give the interface facing the peer a global address of that family, or set next-hop-"+string(d.Family))
		}
	}
	for _, d := range old {
		if !is[key(d)] {
			s.log.Info("routes of a family are sent to a peer again: a next hop of that family was found",
				"peer", d.Peer, "family", d.Family)
		}
	}
}

// Dropped returns the families whose routes with next hop "self" are not
// sent to a peer, for want of a next hop of that family.
func (s *Speaker) Dropped() []DroppedFamily {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.export.dropped)
}

// watchExport re-plans the export policy whenever the host's addresses
// change (a next hop of the other family may appear, go or change) until
// ctx ends.
func (s *Speaker) watchExport(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.exportCheck:
		}
		s.mu.Lock()
		if s.state == lifecycleRunning {
			// An unnumbered peer's neighbour may have appeared or changed:
			// the whole peer set again (it changes only what differs).
			if len(interfaces(s.want)) > 0 {
				if err := s.setPeers(ctx, s.want); err != nil && ctx.Err() == nil {
					s.log.Error("cannot update the peers after a neighbour or address change", "error", err)
				}
			} else if err := s.updateExport(ctx, nil); err != nil && ctx.Err() == nil {
				s.log.Error("cannot update the export policy after an address change", "error", err)
			}
		}
		s.mu.Unlock()
	}
}

func (s *Speaker) kickExport() {
	select {
	case s.exportCheck <- struct{}{}:
	default:
	}
}

// PlanNextHops returns, as the speaker would find them now with nh, the
// next hop "self" of the other family per peer and the families dropped
// for want of one: what `virtbgp check` reports on the host.
func PlanNextHops(b config.BGP, nh NextHopFunc) (map[netip.Addr]map[config.Family]netip.Addr, []DroppedFamily) {
	pl := planExport(b.ASN, b.Peers, nh)
	return pl.nextHops, pl.dropped
}
