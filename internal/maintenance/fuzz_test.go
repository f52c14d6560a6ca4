package maintenance

import (
	"testing"
	"time"
)

// FuzzParse: Parse never panics, and what it accepts Save writes and Parse
// reads back the same.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"entries":[{"domain":"web-1","uuid":"u1","set_by":"uid 0","since":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"entries":[{"uuid":"u","prefix":"2001:db8::1/128","set_by":"token a","ttl":"1h","expires":"2099-01-01T00:00:00Z","note":"x"}]}`))
	f.Add([]byte(`{"version":1,"entries":[]}`))
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse(data, now)
		if err != nil {
			return
		}
		dir := t.TempDir()
		if err := Save(dir, entries); err != nil {
			t.Fatalf("Save of what Parse accepted: %v", err)
		}
		back, err := Load(dir, now)
		if err != nil {
			t.Fatalf("Load of what Save wrote: %v", err)
		}
		if len(back) != len(entries) {
			t.Fatalf("read back %d entries, want %d", len(back), len(entries))
		}
		for k, e := range entries {
			b, ok := back[k]
			if !ok || b.Note != e.Note || b.SetBy != e.SetBy || !b.Expires.Equal(e.Expires) {
				t.Fatalf("%v: read back %+v, want %+v", k, b, e)
			}
		}
	})
}

// FuzzParseRequest: ParseRequest never panics; what it accepts is a
// canonical prefix (or none), a TTL within the bounds, a note it accepts
// again.
func FuzzParseRequest(f *testing.F) {
	f.Add("192.0.2.1", "kernel upgrade", "30m")
	f.Add("2001:db8::/64", "", "")
	f.Add("", "a\x00b", "1ns")
	f.Fuzz(func(t *testing.T, ip, note, ttl string) {
		req := Request{IP: ip, Note: note, TTL: ttl}
		p, d, err := ParseRequest(&req)
		if err != nil {
			return
		}
		if p.IsValid() && p != p.Masked() {
			t.Fatalf("ParseRequest(%q) = %s, not canonical", ip, p)
		}
		if ip != "" && !p.IsValid() || ip == "" && p.IsValid() {
			t.Fatalf("ParseRequest(%q) = %v", ip, p)
		}
		if ttl == "" && d != 0 || ttl != "" && (d < time.Second || d > 7*24*time.Hour) {
			t.Fatalf("ParseRequest ttl %q = %s", ttl, d)
		}
		e := New("d", "u", p, d, note, "uid 0", time.Now(), nil)
		if err := e.check(); err != nil {
			t.Fatalf("the entry of an accepted request does not check: %v", err)
		}
	})
}
