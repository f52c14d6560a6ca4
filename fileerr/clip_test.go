package fileerr

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 64, "short"},
		{"exactly", 7, "exactly"},
		{"0123456789", 4, "0123... (6 more bytes)"},
		{"ééé", 3, "é... (4 more bytes)"}, // not in the middle of a rune
		{"", 0, ""},
	} {
		if got := Clip(tc.in, tc.max); got != tc.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

// FuzzClip: Clip keeps short strings, and cuts long ones to a prefix of at
// most max bytes, valid UTF-8 if the input is, followed by the count of
// what it left out.
func FuzzClip(f *testing.F) {
	f.Add("0123456789", 4)
	f.Add("ééé", 3)
	f.Add(strings.Repeat("x", 1000), 64)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<20 {
			return
		}
		got := Clip(s, max)
		if len(s) <= max {
			if got != s {
				t.Fatalf("Clip(%q, %d) = %q, want it unchanged", s, max, got)
			}
			return
		}
		prefix, rest, ok := strings.Cut(got, "... (")
		if !ok || !strings.HasPrefix(s, prefix) || len(prefix) > max || !strings.HasSuffix(rest, " more bytes)") {
			t.Fatalf("Clip(%q, %d) = %q: want a prefix of at most %d bytes and a count", s, max, got, max)
		}
		if utf8.ValidString(s) && !utf8.ValidString(prefix) {
			t.Fatalf("Clip(%q, %d) cut a rune: %q", s, max, got)
		}
	})
}
