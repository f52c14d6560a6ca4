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
