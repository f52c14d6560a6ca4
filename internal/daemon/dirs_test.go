package daemon

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/reconcile"
)

// Issue 17, finding 8a: with the state directory writable by another
// user, a symbolic link at drain.json.tmp made root overwrite the file it
// points to. The drain record is now written without following links,
// into a file that did not exist, and read the same way.
func TestDrainSaveFollowsNoLink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(victim, []byte("root's secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, drainFile+".tmp")); err != nil {
		t.Fatal(err)
	}
	dr := &drainer{log: testLogger()}
	if _, err := dr.load(dir, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := dr.save(drainRecord{State: reconcile.DrainDrained, Since: time.Unix(0, 0).UTC()}); err != nil {
		t.Fatalf("save: %v", err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "root's secret\n" {
		t.Errorf("the link's target now holds %q (%v): save followed the link", b, err)
	}
	fi, err := os.Lstat(filepath.Join(dir, drainFile))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("drain.json: %v, %v; want a regular file of mode 0600", fi, err)
	}
	if got := readRecord(t, dir); !strings.Contains(got, `"drained"`) {
		t.Errorf("drain.json = %q", got)
	}

	// drain.json itself a link: refused, not read through.
	dir2 := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, drainFile), filepath.Join(dir2, drainFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := (&drainer{log: testLogger()}).load(dir2, time.Minute); err == nil {
		t.Error("load through a symbolic link drain.json: no error")
	}
}

// Issue 17, finding 8: a state directory or control socket directory that
// another user can write is refused by the daemon and named by check.
func TestUnsafeDirs(t *testing.T) {
	mk := func(t *testing.T, mode fs.FileMode, parts ...string) string {
		d := filepath.Join(append([]string{t.TempDir()}, parts...)...)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tt := range []struct {
		name  string
		state func(t *testing.T) string
		want  string // "" for safe
	}{
		{"private", func(t *testing.T) string { return mk(t, 0o700) }, ""},
		{"not there yet, private parent", func(t *testing.T) string { return filepath.Join(mk(t, 0o755), "new") }, ""},
		{"writable by all", func(t *testing.T) string { return mk(t, 0o777) }, "is writable by other users"},
		{"writable by the group", func(t *testing.T) string { return mk(t, 0o770) }, "is writable by other users"},
		{"sticky but shared", func(t *testing.T) string { return mk(t, 0o777|fs.ModeSticky) }, "is writable by other users"},
		{"not there yet, in a shared directory", func(t *testing.T) string { return filepath.Join(mk(t, 0o777|fs.ModeSticky), "new") }, "is writable by other users"},
		{"parent writable by all", func(t *testing.T) string {
			d := mk(t, 0o700, "a", "b")
			if err := os.Chmod(filepath.Dir(d), 0o777); err != nil {
				t.Fatal(err)
			}
			return d
		}, "is writable by other users"},
		{"parent shared but sticky", func(t *testing.T) string {
			d := mk(t, 0o700, "a", "b")
			if err := os.Chmod(filepath.Dir(d), 0o777|fs.ModeSticky); err != nil {
				t.Fatal(err)
			}
			return d
		}, ""},
		{"a link in a shared directory to a private one", func(t *testing.T) string {
			shared := mk(t, 0o777)
			link := filepath.Join(shared, "state")
			if err := os.Symlink(mk(t, 0o700), link); err != nil {
				t.Fatal(err)
			}
			return link
		}, "is writable by other users"},
		{"a link in a private directory to a shared one", func(t *testing.T) string {
			link := filepath.Join(mk(t, 0o700), "state")
			if err := os.Symlink(mk(t, 0o777), link); err != nil {
				t.Fatal(err)
			}
			return link
		}, "is writable by other users"},
		{"a link in a private directory to a private one", func(t *testing.T) string {
			link := filepath.Join(mk(t, 0o700), "state")
			if err := os.Symlink(mk(t, 0o700), link); err != nil {
				t.Fatal(err)
			}
			return link
		}, ""},
		{"owned by another user", func(t *testing.T) string {
			d := mk(t, 0o700)
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return d
		}, "belongs to uid 65534"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "owned by another user" && os.Geteuid() != 0 {
				t.Fatal("needs root (tests run as root)")
			}
			state := tt.state(t)
			cfg := &config.Config{StateDir: state, Control: config.Control{Socket: filepath.Join(mk(t, 0o700), "c.sock")}}
			got := UnsafeDirs(cfg)
			if tt.want == "" {
				if len(got) != 0 {
					t.Errorf("UnsafeDirs = %q, want none", got)
				}
				return
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], "state-dir: ") || !strings.Contains(got[0], tt.want) {
				t.Errorf("UnsafeDirs = %q, want one state-dir problem with %q", got, tt.want)
			}
			// And the daemon refuses to start with it.
			_, err := New(cfg, nil, testLogger(), Options{})
			if err == nil || !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want a refusal naming the problem", err)
			}
			if err != nil && errors.Is(err, fs.ErrNotExist) {
				t.Errorf("New: %v", err)
			}
		})
	}
	// The control socket's directory.
	shared := mk(t, 0o777)
	got := UnsafeDirs(&config.Config{StateDir: mk(t, 0o700), Control: config.Control{Socket: filepath.Join(shared, "c.sock")}})
	if len(got) != 1 || !strings.HasPrefix(got[0], "control.socket: "+shared+" is writable by other users") {
		t.Errorf("UnsafeDirs with a shared socket directory = %q", got)
	}
}
