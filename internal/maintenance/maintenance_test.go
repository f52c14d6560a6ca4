package maintenance

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/manual"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name   string
		req    Request
		prefix string // "" for none
		ttl    time.Duration
		field  string // the error's field; "" for no error
	}{
		{"empty: the whole domain", Request{}, "", 0, ""},
		{"an address", Request{IP: "192.0.2.10"}, "192.0.2.10/32", 0, ""},
		{"an IPv6 address", Request{IP: "2001:db8::10"}, "2001:db8::10/128", 0, ""},
		{"a prefix", Request{IP: "192.0.2.0/28"}, "192.0.2.0/28", 0, ""},
		{"note and ttl", Request{Note: "kernel upgrade CHG-1", TTL: "30m"}, "", 30 * time.Minute, ""},
		{"not an address", Request{IP: "web-1"}, "", 0, "ip"},
		{"host bits set", Request{IP: "192.0.2.1/24"}, "", 0, "ip"},
		{"a bad ttl", Request{TTL: "soon"}, "", 0, "ttl"},
		{"a ttl too long", Request{TTL: "720h"}, "", 0, "ttl"},
		{"a control character in the note", Request{Note: "a\nb"}, "", 0, "note"},
		{"a note too long", Request{Note: strings.Repeat("x", manual.MaxNoteLen+1)}, "", 0, "note"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ttl, err := ParseRequest(&tt.req)
			if tt.field != "" {
				var fe *manual.FieldError
				if !errors.As(err, &fe) || fe.Field != tt.field {
					t.Fatalf("ParseRequest(%+v) = %v, want an error of field %q", tt.req, err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest(%+v): %v", tt.req, err)
			}
			got := ""
			if p.IsValid() {
				got = p.String()
			}
			if got != tt.prefix || ttl != tt.ttl {
				t.Errorf("ParseRequest(%+v) = %q, %s; want %q, %s", tt.req, got, ttl, tt.prefix, tt.ttl)
			}
		})
	}
}

// TestNewKeepsFirstSetter: setting a maintenance again keeps who set it
// first and since when, and records the update.
func TestNewKeepsFirstSetter(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	first := New("web-1", "u1", netip.Prefix{}, 0, "a", "uid 0", t0, nil)
	again := New("web-1", "u1", netip.Prefix{}, time.Hour, "b", "token ops", t0.Add(time.Minute), &first)
	if again.SetBy != "uid 0" || !again.Since.Equal(t0) || again.UpdatedBy != "token ops" || !again.Updated.Equal(t0.Add(time.Minute)) {
		t.Errorf("renewal = %+v", again)
	}
	if again.Note != "b" || again.TTL != "1h0m0s" || !again.Expires.Equal(t0.Add(time.Minute+time.Hour)) {
		t.Errorf("renewal's note and ttl = %q %q %s", again.Note, again.TTL, again.Expires)
	}
}

// TestSaveLoad: what Save writes, Load reads back; an entry whose TTL
// ended is dropped; the file is private.
func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	entries := map[Key]Entry{}
	for _, e := range []Entry{
		New("web-1", "u1", netip.Prefix{}, 0, "kernel", "uid 0", now, nil),
		New("web-2", "u2", netip.MustParsePrefix("192.0.2.7/32"), time.Hour, "", "token ops", now, nil),
		New("web-3", "u3", netip.Prefix{}, time.Second, "", "uid 0", now.Add(-time.Hour), nil),
	} {
		entries[e.Key()] = e
	}
	if err := Save(dir, entries); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, mode %v", err, fi.Mode())
	}
	got, err := Load(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Load = %v, want web-1 and web-2 (web-3 expired)", got)
	}
	for _, k := range []Key{{UUID: "u1"}, {UUID: "u2", Prefix: netip.MustParsePrefix("192.0.2.7/32")}} {
		if g, w := got[k], entries[k]; g.Domain != w.Domain || g.Note != w.Note || !g.Expires.Equal(w.Expires) || !g.Since.Equal(w.Since) || g.SetBy != w.SetBy {
			t.Errorf("%v: read back %+v, want %+v", k, g, w)
		}
	}
	if err := os.Remove(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir, now); err != nil || len(got) != 0 {
		t.Errorf("Load without a file = %v, %v; want none", got, err)
	}
}

// TestLoadRefuses: a state file that is not what Save writes stops the
// start with an error naming the file, and a symbolic link is not
// followed.
func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"not JSON", "{", "invalid JSON"},
		{"unknown field", `{"version":1,"entries":[],"extra":1}`, "unknown field"},
		{"wrong version", `{"version":2,"entries":[]}`, "version 2"},
		{"no uuid", `{"version":1,"entries":[{"domain":"a","set_by":"uid 0","since":"2026-01-01T00:00:00Z"}]}`, "uuid: required"},
		{"no setter", `{"version":1,"entries":[{"domain":"a","uuid":"u","since":"2026-01-01T00:00:00Z"}]}`, "set_by: required"},
		{"ttl without expiry", `{"version":1,"entries":[{"uuid":"u","set_by":"uid 0","ttl":"1h"}]}`, "both or neither"},
		{"listed twice", `{"version":1,"entries":[{"uuid":"u","set_by":"x"},{"uuid":"u","set_by":"y"}]}`, "listed twice"},
		{"a bad prefix", `{"version":1,"entries":[{"uuid":"u","set_by":"x","prefix":"192.0.2.1/24"}]}`, "canonical"},
		{"data after", `{"version":1,"entries":[]} {}`, "data after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), FileName) {
				t.Errorf("Load = %v, want an error naming %s with %q", err, FileName, tt.want)
			}
		})
	}
	t.Run("symbolic link", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(t.TempDir(), "elsewhere.json")
		if err := os.WriteFile(target, []byte(`{"version":1,"entries":[]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, FileName)); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir, time.Now()); err == nil {
			t.Error("Load followed a symbolic link")
		}
	})
}

// TestSaveReplacesLink: Save replaces a symbolic link at the file's name
// instead of writing through it.
func TestSaveReplacesLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, map[Key]Entry{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("Save wrote through a symbolic link: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(dir, FileName)); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("state file after Save: %v %v", fi, err)
	}
}

func TestForReconciler(t *testing.T) {
	e := New("web-1", "u1", netip.Prefix{}, 0, "", "token ops", time.Now(), nil)
	m := ForReconciler(map[Key]Entry{e.Key(): e})
	if why, in := m.In("u1", netip.MustParsePrefix("192.0.2.1/32")); !in || why != "maintenance by token ops" {
		t.Errorf("In = %q, %v", why, in)
	}
}
