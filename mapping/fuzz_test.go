package mapping_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// FuzzParse checks that Parse never panics, that every problem it reports is
// "file:line: msg" on one line, and that what it accepts is well-formed:
// canonical prefixes, each found by Owner and by Lookup.
func FuzzParse(f *testing.F) {
	for _, s := range mapping.FuzzSeeds {
		f.Add([]byte(s))
	}
	if data, err := os.ReadFile(filepath.Join("..", "examples", "mapping.yaml")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := mapping.Parse("m.yaml", data)
		if err != nil {
			checkProblems(t, err)
			if m != nil {
				t.Fatal("a mapping and an error")
			}
			return
		}
		checkMapping(t, m)
	})
}

func checkProblems(t *testing.T, err error) {
	var list mapping.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %v (%T) is not a non-empty ErrorList", err, err)
	}
	for i, e := range list {
		if e.File != "m.yaml" || e.Line < 0 || e.Msg == "" || strings.ContainsAny(e.Msg, "\n\r") {
			t.Errorf("malformed problem %#v", e)
		}
		want := "m.yaml:" + strconv.Itoa(e.Line) + ": " + e.Msg
		if e.Line == 0 {
			want = "m.yaml: " + e.Msg
		}
		if e.Error() != want {
			t.Errorf("problem renders as %q, want %q", e.Error(), want)
		}
		if i > 0 && list[i-1].Line > e.Line {
			t.Errorf("problems not sorted: line %d after %d", e.Line, list[i-1].Line)
		}
	}
}

func checkMapping(t *testing.T, m *mapping.Mapping) {
	vms := m.VMs()
	total := 0
	for i, v := range vms {
		if i > 0 && vms[i-1].Key >= v.Key {
			t.Fatalf("VMs not sorted: %q after %q", v.Key, vms[i-1].Key)
		}
		if len(v.Routes) == 0 {
			t.Errorf("vm %q has no routes", v.Key)
		}
		total += len(v.Routes)
		for j, r := range v.Routes {
			p := r.Prefix
			if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				t.Errorf("vm %q: prefix %s is not canonical", v.Key, p)
			}
			if j > 0 && v.Routes[j-1].Prefix.Compare(p) >= 0 {
				t.Errorf("vm %q: routes not sorted", v.Key)
			}
			if key, ok := m.Owner(p); !ok || (key != v.Key && !v.Anycast[p]) {
				t.Errorf("Owner(%s) = %q, %v, want %q", p, key, ok, v.Key)
			}
			if nh := r.NextHop; nh.IsValid() && nh.Is4() != p.Addr().Is4() {
				t.Errorf("vm %q: %s: next hop %s of the other family", v.Key, p, nh)
			}
			if !slices.IsSorted(r.Communities) || len(slices.Compact(slices.Clone(r.Communities))) != len(r.Communities) {
				t.Errorf("vm %q: communities %v not normalized", v.Key, r.Communities)
			}
		}
		name, uuid := v.Key, v.UUID
		if v.UUID == v.Key {
			name = "some-domain"
		}
		if key, routes := m.Lookup(name, uuid); key != v.Key || len(routes) != len(v.Routes) {
			t.Errorf("Lookup(%q, %q) = %q, want %q", name, uuid, key, v.Key)
		}
	}
	if n, r := m.Stats(); n != len(vms) || r != total {
		t.Errorf("Stats() = %d, %d, want %d, %d", n, r, len(vms), total)
	}
}
