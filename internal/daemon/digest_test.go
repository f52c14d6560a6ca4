package daemon

import (
	"reflect"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

const digestBase = `version: 1
defaults:
  communities: ["65001:100"]
  med: 10
vms:
  web-01:
    ips: [192.0.2.10, "2001:db8::10"]
  db-01:
    uuid: 00000000-0000-0000-0000-0000000000d1
    ips:
      - prefix: 192.0.2.20
        local-pref: 200
`

// digestBase again, laid out otherwise: comments, entries in another
// order, defaults spelled out per entry, block and flow lists swapped,
// another file name.
const digestRelaid = `# the same VMs and routes as digestBase
version: 1
vms:
  db-01:
    uuid: 00000000-0000-0000-0000-0000000000d1
    communities: ["65001:100"]
    ips: [{prefix: 192.0.2.20, med: 10, local-pref: 200}]   # one IP
  web-01:
    med: 10
    communities: ["65001:100", "65001:100"]
    ips:
      - "2001:db8::10"
      - 192.0.2.10
`

func parse(t *testing.T, file, text string) *mapping.Mapping {
	t.Helper()
	m, err := mapping.Parse(file, []byte(text))
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	return m
}

// TestContentDigest: the digest is equal for the same entries and routes
// however laid out, differs for any change of what is announced for which
// VM, and agrees with mapping.Diff on what is a change.
func TestContentDigest(t *testing.T) {
	base := parse(t, "a.yaml", digestBase)
	want := contentDigest(base)
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		t.Fatalf("digest %q is not SHA-256 hex", want)
	}
	if got := contentDigest(parse(t, "other/b.yaml", digestRelaid)); got != want {
		t.Errorf("relaid mapping: digest %s, want %s (the same content)", got, want)
	}
	if contentDigest(nil) == want || contentDigest(nil) != contentDigest(parse(t, "e.yaml", "version: 1\nvms: {}\n")) {
		t.Errorf("the nil mapping must digest as an empty one, and differ from base")
	}
	for _, tc := range []struct{ name, old, new string }{
		{"med", "  med: 10\n", "  med: 11\n"},
		{"no med", "  med: 10\n", ""},
		{"community", `communities: ["65001:100"]`, `communities: ["65001:101"]`},
		{"large community", `communities: ["65001:100"]`, `communities: ["65001:100"]` + "\n  large-communities: [\"65001:1:2\"]"},
		{"local-pref", "local-pref: 200", "local-pref: 201"},
		{"prepend", "  med: 10\n", "  med: 10\n  as-path-prepend: 1\n"},
		{"next hop", "        local-pref: 200\n", "        local-pref: 200\n        next-hop: 198.51.100.1\n"},
		{"prefix", "192.0.2.10,", "192.0.2.11,"},
		{"one IP more", `"2001:db8::10"]`, `"2001:db8::10", 192.0.2.12]`},
		{"uuid pin", "0000000000d1", "0000000000d2"},
		{"entry renamed", "web-01:", "web-02:"},
		{"IP moved to another entry", "ips: [192.0.2.10, \"2001:db8::10\"]", "ips: [\"2001:db8::10\"]\n  web-03:\n    ips: [192.0.2.10]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(digestBase, tc.old, tc.new, 1)
			if text == digestBase {
				t.Fatalf("%q not in the base mapping", tc.old)
			}
			m := parse(t, "a.yaml", text)
			if got := contentDigest(m); got == want {
				t.Errorf("digest unchanged by the edit")
			}
			if mapping.Diff(base, m).Empty() {
				t.Errorf("mapping.Diff sees no change where the digest does")
			}
		})
	}
	if c := mapping.Diff(base, parse(t, "other/b.yaml", digestRelaid)); !c.Empty() {
		t.Errorf("mapping.Diff sees a change in the relaid mapping: %s", c)
	}
}

// contentDigest encodes every field of mapping.Route: a field added there
// must be added to the digest (and here).
func TestContentDigestCoversRoute(t *testing.T) {
	var names []string
	for f := range reflect.TypeFor[mapping.Route]().Fields() {
		names = append(names, f.Name)
	}
	const want = "Prefix NextHop Communities LargeCommunities MED LocalPref ASPathPrepend"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("mapping.Route has the fields %s; contentDigest encodes %s: encode the new ones", got, want)
	}
}

func TestOrigins(t *testing.T) {
	m, err := mapping.Parse("/etc/virtbgp/mapping.yaml", []byte(digestBase))
	if err != nil {
		t.Fatal(err)
	}
	o := newOrigins(m)
	for key, want := range map[string]string{
		"web-01": "/etc/virtbgp/mapping.yaml:6",
		"db-01":  "/etc/virtbgp/mapping.yaml:8",
		"nope":   "",
	} {
		if got := o.of(key); got != want {
			t.Errorf("origin of %s = %q, want %q", key, got, want)
		}
	}
	if got := newOrigins(nil).of("web-01"); got != "" {
		t.Errorf("origin in the nil mapping = %q, want none", got)
	}
}
