package mapping_test

import (
	"slices"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

func TestDiff(t *testing.T) {
	old := mustParse(t, doc(
		"version: 1",
		"vms:",
		"  same: {ips: [192.0.2.1, 2001:db8::1]}",
		"  moved: {ips: [192.0.2.2]}",
		"  attrs: {ips: [192.0.2.3, 192.0.2.4]}",
		"  more: {ips: [192.0.2.5]}",
		"  fewer: {ips: [192.0.2.6, 192.0.2.7]}",
		"  pinned: {ips: [192.0.2.8]}",
		"  gone: {ips: [192.0.2.9, 192.0.2.10]}",
	))
	new := mustParse(t, doc(
		"version: 1",
		"defaults: {}",
		"vms:",
		"  added: {ips: [198.51.100.1, 198.51.100.2, 198.51.100.3]}",
		"  same: {ips: [2001:db8::1, 192.0.2.1]}", // other order, same routes
		"  attrs: {ips: [192.0.2.3, {prefix: 192.0.2.4, med: 1}]}",
		"  more: {ips: [192.0.2.5, 192.0.2.11]}",
		"  fewer: {ips: [192.0.2.7]}",
		"  pinned: {uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f, ips: [192.0.2.8]}",
		"  moved: {ips: [192.0.2.2]}",
	))
	c := mapping.Diff(old, new)
	if want := []string{"added"}; !slices.Equal(c.Added, want) {
		t.Errorf("Added = %q, want %q", c.Added, want)
	}
	if want := []string{"gone"}; !slices.Equal(c.Removed, want) {
		t.Errorf("Removed = %q, want %q", c.Removed, want)
	}
	if want := []string{"attrs", "fewer", "more", "pinned"}; !slices.Equal(c.Changed, want) {
		t.Errorf("Changed = %q, want %q", c.Changed, want)
	}
	if want := (mapping.RouteChanges{Added: 4, Removed: 3, Changed: 1}); c.Routes != want {
		t.Errorf("Routes = %+v, want %+v", c.Routes, want)
	}
	if c.Empty() {
		t.Error("Empty() = true")
	}
	if got, want := c.String(), "1 VM added, 4 changed, 1 removed (4 routes added, 1 changed, 3 removed)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}

	if c := mapping.Diff(old, old); !c.Empty() || c.String() != "0 VMs added, 0 changed, 0 removed (0 routes added, 0 changed, 0 removed)" {
		t.Errorf("Diff(old, old) = %+v: %s", c, c)
	}
	if c := mapping.Diff(nil, new); len(c.Added) != 7 || c.Routes.Added != 12 || len(c.Removed)+len(c.Changed) != 0 {
		t.Errorf("Diff(nil, new) = %+v", c)
	}
	if c := mapping.Diff(new, nil); len(c.Removed) != 7 || c.Routes.Removed != 12 || len(c.Added)+len(c.Changed) != 0 {
		t.Errorf("Diff(new, nil) = %+v", c)
	}
	if c := mapping.Diff(nil, nil); !c.Empty() {
		t.Errorf("Diff(nil, nil) = %+v", c)
	}
	one := mapping.Changes{Added: []string{"a", "b"}, Changed: []string{"c"}, Routes: mapping.RouteChanges{Added: 5, Changed: 1}}
	if got, want := one.String(), "2 VMs added, 1 changed, 0 removed (5 routes added, 1 changed, 0 removed)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestDiffAcrossFiles checks that an entry moved to another file is not a
// change.
func TestDiffAcrossFiles(t *testing.T) {
	a, err := mapping.Load(writeFiles(t, map[string]string{
		"a.yaml": "version: 1\nvms: {x: {ips: [192.0.2.1]}, y: {ips: [192.0.2.2]}}\n",
	}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := mapping.Load(writeFiles(t, map[string]string{
		"a.yaml": "version: 1\nvms: {x: {ips: [192.0.2.1]}}\n",
		"b.yaml": "version: 1\n\nvms: {y: {ips: [192.0.2.2]}}\n",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c := mapping.Diff(a, b); !c.Empty() {
		t.Errorf("Diff = %s", c)
	}
}
