package rig

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// MetadataElement renders virtbgp's metadata element (docs/metadata.md)
// for one domain's routes, without namespace (the form virDomainSetMetadata
// takes), so that it resolves to the same routes as MappingYAML's entry:
// the communities, which every route of a domain shares, on <vm>, the MED
// on each <ip>.
func MetadataElement(rs []Route) string {
	var b strings.Builder
	b.WriteString("<vm")
	if len(rs) > 0 {
		fmt.Fprintf(&b, " communities=%q", strings.Join(rs[0].Communities, " "))
	}
	b.WriteString(">")
	for _, rt := range rs {
		if !slices.Equal(rt.Communities, rs[0].Communities) {
			// Routes gives every route of a domain the same communities;
			// a caller's own routes may not.
			fmt.Fprintf(&b, `<ip prefix="%s" med="%d" communities=%q/>`, rt.Prefix.Addr(), rt.MED, strings.Join(rt.Communities, " "))
			continue
		}
		fmt.Fprintf(&b, `<ip prefix="%s" med="%d"/>`, rt.Prefix.Addr(), rt.MED)
	}
	b.WriteString("</vm>")
	return b.String()
}

// MetadataConfigYAML is the config's mapping.metadata (for
// Virtbgp.MappingExtra) that enables virtbgp's element and allows the /16s
// that hold the routes of rs (Routes: 10.<i/250>.0.0/16; a /16 is the
// broadest pool the config accepts).
func MetadataConfigYAML(rs [][]Route) string {
	var pools []string
	seen := map[netip.Prefix]bool{}
	for _, rt := range Flat(rs) {
		p, err := rt.Prefix.Addr().Prefix(16)
		if err != nil || seen[p] {
			continue
		}
		seen[p] = true
		pools = append(pools, p.String())
	}
	return fmt.Sprintf("metadata:\n  enabled: true\n  allowed-prefixes: [%s]\n", strings.Join(pools, ", "))
}

// SetDomainMetadata writes virtbgp's element into the definitions of
// domain i, as `virsh metadata --live --config` would: the persistent one,
// and the live one if the domain runs.
func (r *Rig) SetDomainMetadata(i int, element string) error {
	d, ok := r.domains[DomainName(i)]
	if !ok {
		return fmt.Errorf("metadata of %s: not defined", DomainName(i))
	}
	flags := lv.DOMAIN_AFFECT_CONFIG
	if active, err := d.IsActive(); err != nil {
		return fmt.Errorf("metadata of %s: %w", DomainName(i), err)
	} else if active {
		flags |= lv.DOMAIN_AFFECT_LIVE
	}
	if err := d.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, element, mapping.MetadataKey, mapping.MetadataNS, flags); err != nil {
		return fmt.Errorf("metadata of %s: %w", DomainName(i), err)
	}
	return nil
}

// Status returns the status report of the host's virtbgp (its control
// socket).
func (r *Rig) Status(ctx context.Context) (status.Report, error) {
	c := control.Client{Path: r.Host.VirtbgpSocket()}
	rep, err := c.Status(ctx)
	if err != nil {
		return rep, fmt.Errorf("virtbgp status: %w", err)
	}
	return rep, nil
}

// CheckSource checks that virtbgp announces every route of domains
// 0..len(rs)-1 from source (status.SourceFile, status.SourceMetadata)
// without problem, and that BIRD has each route via the host with the
// route's MED and communities: that the routes really came the way a
// suite meant, with the attributes it gave them.
func (r *Rig) CheckSource(ctx context.Context, rs [][]Route, source string) error {
	rep, err := r.Status(ctx)
	if err != nil {
		return err
	}
	doms := map[string]status.Domain{}
	for _, d := range rep.Domains {
		doms[d.Name] = d
	}
	var bad []string
	for i, v := range rs {
		d, ok := doms[DomainName(i)]
		switch {
		case !ok:
			bad = append(bad, DomainName(i)+": not in the status")
		case d.Source != source || d.Routes != len(v) || d.Problem != "":
			bad = append(bad, fmt.Sprintf("%s: source %q, %d routes, problem %q (want source %q, %d routes)", d.Name, d.Source, d.Routes, d.Problem, source, len(v)))
		}
	}
	rib, err := r.Lab.BIRD.Routes(ctx)
	if err != nil {
		return fmt.Errorf("check source %s: %w", source, err)
	}
	for _, rt := range Flat(rs) {
		var path *lab.Path
		for _, p := range rib.Paths(rt.Prefix) {
			if p.NextHop == r.Host.IPv4 {
				path = &p
				break
			}
		}
		if path == nil {
			bad = append(bad, fmt.Sprintf("%s: BIRD has no path via %s", rt.Prefix, r.Host.IPv4))
			continue
		}
		var comms []string
		for _, c := range path.Communities {
			comms = append(comms, mapping.FormatCommunity(c))
		}
		want := slices.Sorted(slices.Values(rt.Communities))
		slices.Sort(comms)
		if path.MED == nil || *path.MED != rt.MED || !slices.Equal(comms, want) {
			bad = append(bad, fmt.Sprintf("%s: BIRD has %s, want med %d community %v", rt.Prefix, path, rt.MED, want))
		}
	}
	if len(bad) > 0 {
		if len(bad) > 5 {
			bad = append(bad[:5], fmt.Sprintf("and %d more", len(bad)-5))
		}
		return fmt.Errorf("routes not from %s as given: %s", source, strings.Join(bad, "; "))
	}
	return nil
}

// SuspendDomain pauses running domain i (virDomainSuspend).
func (r *Rig) SuspendDomain(i int) error {
	d, ok := r.domains[DomainName(i)]
	if !ok {
		return fmt.Errorf("suspend %s: not defined", DomainName(i))
	}
	if err := d.Suspend(); err != nil {
		return fmt.Errorf("suspend %s: %w", DomainName(i), err)
	}
	return nil
}

// ResumeDomain resumes paused domain i (virDomainResume).
func (r *Rig) ResumeDomain(i int) error {
	d, ok := r.domains[DomainName(i)]
	if !ok {
		return fmt.Errorf("resume %s: not defined", DomainName(i))
	}
	if err := d.Resume(); err != nil {
		return fmt.Errorf("resume %s: %w", DomainName(i), err)
	}
	return nil
}
