package manual

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/mapping"
)

var allow = mapping.Allow{
	Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")},
	MinBits4: 24, MinBits6: 64,
	NextHops: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
}

func u32(v uint32) *uint32 { return &v }
func ip(v int) *int        { return &v }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		req   Request
		field string // "" when valid
		msg   string
	}{
		{"host route", Request{Prefix: "198.51.100.1"}, "", ""},
		{"a /24 with everything", Request{Prefix: "198.51.100.0/24", NextHop: "198.51.100.254", MED: u32(5), LocalPref: u32(200),
			ASPathPrepend: ip(2), Communities: []string{"blackhole", "65001:1"}, LargeCommunities: []string{"65001:1:2"}, Note: "ok", TTL: "10m"}, "", ""},
		{"IPv6", Request{Prefix: "2001:db8:100::1"}, "", ""},
		{"missing prefix", Request{}, "prefix", "required"},
		{"not a prefix", Request{Prefix: "nope"}, "prefix", `invalid IP address "nope"`},
		{"host bits", Request{Prefix: "198.51.100.1/24"}, "prefix", "host bits set"},
		{"reserved", Request{Prefix: "127.0.0.1"}, "prefix", "reserved address"},
		{"outside the pools", Request{Prefix: "203.0.113.1"}, "prefix", "outside the prefixes allowed to a manual route"},
		{"too short", Request{Prefix: "198.51.100.0/23"}, "prefix", "/24 or longer only"},
		{"next hop outside", Request{Prefix: "198.51.100.1", NextHop: "203.0.113.1"}, "next_hop", "outside the next hops allowed"},
		{"next hop of the other family", Request{Prefix: "198.51.100.1", NextHop: "2001:db8::1"}, "next_hop", "not of the prefix's family"},
		{"next hop not an address", Request{Prefix: "198.51.100.1", NextHop: "router"}, "next_hop", `want "self" or an IP address`},
		{"prepend", Request{Prefix: "198.51.100.1", ASPathPrepend: ip(17)}, "as_path_prepend", "from 0 to 16, got 17"},
		{"community", Request{Prefix: "198.51.100.1", Communities: []string{"65001:1", "x"}}, "communities[1]", `invalid community "x"`},
		{"large community", Request{Prefix: "198.51.100.1", LargeCommunities: []string{"1:2"}}, "large_communities[0]", "invalid large community"},
		{"too many communities", Request{Prefix: "198.51.100.1", Communities: make([]string, MaxCommunities+1)}, "communities", "at most 64"},
		{"long note", Request{Prefix: "198.51.100.1", Note: strings.Repeat("x", MaxNoteLen+1)}, "note", "at most 256 bytes"},
		{"note with a newline", Request{Prefix: "198.51.100.1", Note: "a\nb"}, "note", "only printable characters"},
		{"bad ttl", Request{Prefix: "198.51.100.1", TTL: "1 day"}, "ttl", "want a duration"},
		{"ttl too short", Request{Prefix: "198.51.100.1", TTL: "500ms"}, "ttl", "want from 1s to 168h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _, err := Validate(&tc.req, &allow)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, refused := allow.Filter("", []mapping.Route{r}); refused != nil {
					t.Errorf("a valid route the pools refuse: %v", refused)
				}
				return
			}
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("Validate = %v, want field %q with %q", err, tc.field, tc.msg)
			}
		})
	}
}

// TestSaveLoad: a record survives Save and Load as it was; a lease that
// ended is dropped; a renewal keeps the creator.
func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	req := Request{Prefix: "198.51.100.1", MED: u32(7), Communities: []string{"blackhole"}, Note: "rtbh", TTL: "1m"}
	r, ttl, err := Validate(&req, &allow)
	if err != nil {
		t.Fatal(err)
	}
	first := New(r, ttl, req.Note, "uid 0", now, nil)
	renewed := New(r, ttl, req.Note, "token ci", now.Add(30*time.Second), &first)
	if renewed.CreatedBy != "uid 0" || !renewed.Created.Equal(now) || renewed.UpdatedBy != "token ci" || !renewed.Expires.Equal(now.Add(90*time.Second)) {
		t.Errorf("renewal %+v", renewed)
	}
	forever := New(mapping.Route{Prefix: netip.MustParsePrefix("198.51.100.2/32")}, 0, "", "uid 0", now, nil)
	routes := map[netip.Prefix]Route{renewed.Prefix: renewed, forever.Prefix: forever}
	if err := Save(path, routes); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file %v %v, want mode 0600", fi, err)
	}
	got, err := Load(path, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(Sorted(got))
	wj, _ := json.Marshal(Sorted(routes))
	if string(gj) != string(wj) {
		t.Errorf("Load:\n got %s\nwant %s", gj, wj)
	}
	got, err = Load(path, now.Add(2*time.Minute))
	if err != nil || len(got) != 1 || got[forever.Prefix].Prefix != forever.Prefix {
		t.Errorf("Load after the lease: %v %v, want only the route without a lease", got, err)
	}
	if got, err := Load(filepath.Join(t.TempDir(), "none.json"), now); err != nil || len(got) != 0 {
		t.Errorf("Load of a missing file: %v %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("Save left %d files, want 1", len(entries))
	}
}

func TestParseRejects(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct{ name, data, want string }{
		{"not JSON", `routes`, "invalid JSON"},
		{"unknown field", `{"version":1,"routes":[],"extra":1}`, `unknown field "extra"`},
		{"version", `{"version":2,"routes":[]}`, "version 2, want 1"},
		{"reserved prefix", `{"version":1,"routes":[{"prefix":"127.0.0.1/32","next_hop":"self","created_by":"x","created":"2026-01-01T00:00:00Z"}]}`, "routes[0]: prefix: 127.0.0.1 is a reserved address"},
		{"bad community", `{"version":1,"routes":[{"prefix":"198.51.100.1/32","next_hop":"self","communities":["x"],"created_by":"x","created":"2026-01-01T00:00:00Z"}]}`, "routes[0]: communities[0]"},
		{"twice", `{"version":1,"routes":[{"prefix":"198.51.100.1/32","next_hop":"self"},{"prefix":"198.51.100.1/32","next_hop":"self"}]}`, "routes[1]: 198.51.100.1/32 listed twice"},
		{"trailing data", `{"version":1,"routes":[]} {}`, "data after the object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data), now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzParse: the state file's parser never panics, and what it accepts
// saves and parses back the same.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"routes":[{"prefix":"198.51.100.1/32","next_hop":"self","med":7,"communities":["blackhole"],"created_by":"uid 0","created":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"routes":[]}`))
	f.Add([]byte(`{"version":1,"routes":[{"prefix":"2001:db8::/64","next_hop":"2001:db8::1","as_path_prepend":3,"large_communities":["1:2:3"],"ttl":"1m","expires":"2030-01-01T00:00:00Z"}]}`))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		routes, err := Parse(data, now)
		if err != nil {
			return
		}
		path := filepath.Join(t.TempDir(), FileName)
		if err := Save(path, routes); err != nil {
			t.Fatal(err)
		}
		again, err := Load(path, now)
		if err != nil || len(again) != len(routes) {
			t.Fatalf("accepted routes do not load back: %v (%d, %d)", err, len(again), len(routes))
		}
	})
}

// FuzzRequest: an API request body, decoded as the server does, never
// panics Validate, and a route it accepts is inside the pools and has a
// canonical record that checks again.
func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"prefix":"198.51.100.1","med":42,"communities":["65001:7","blackhole"],"note":"rtbh"}`))
	f.Add([]byte(`{"prefix":"2001:db8:100::/64","next_hop":"self","ttl":"30s","large_communities":["1:2:3"],"as_path_prepend":2}`))
	f.Add([]byte(`{"prefix":"198.51.100.0/24","next_hop":"198.51.100.1","local_pref":100}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req Request
		if json.Unmarshal(data, &req) != nil {
			return
		}
		r, ttl, err := Validate(&req, &allow)
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %T %v, want a *FieldError", err, err)
			}
			return
		}
		if _, refused := allow.Filter("", []mapping.Route{r}); refused != nil {
			t.Fatalf("accepted %v outside the pools: %v", r, refused)
		}
		rec := New(r, ttl, req.Note, "uid 0", time.Now(), nil)
		back, err := rec.BGP()
		if err != nil || !back.Equal(r) {
			t.Fatalf("record %+v gives %v, %v; want %v", rec, back, err, r)
		}
	})
}
