package daemon

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestResolveWatch: what the watcher watches for a path: the directory of
// each symbolic link on the way and of the final component, and a mapping
// directory itself.
func TestResolveWatch(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := func(p string) { writeTestFile(t, filepath.Join(root, p), "version: 1\n") }
	link := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("etc")
	file("etc/mapping.yaml")
	mk("releases/r1/conf")
	file("releases/r1/conf/m.yaml")
	link("releases/r1", "current")
	mk("cm/..2026")
	file("cm/..2026/m.yaml")
	link("..2026", "cm/..data")
	link("..data/m.yaml", "cm/m.yaml")
	mk("m.d")
	link("loop2", "loop1")
	link("loop1", "loop2")

	for _, tc := range []struct {
		name, path string
		want       []string // dir:name, and "all:dir"
		err        string
	}{
		{"plain file", "etc/mapping.yaml", []string{"etc:mapping.yaml"}, ""},
		{"release directory link", "current/conf/m.yaml", []string{".:current", "releases/r1/conf:m.yaml"}, ""},
		{"ConfigMap", "cm/m.yaml", []string{"cm:..data", "cm:m.yaml", "cm/..2026:m.yaml"}, ""},
		{"mapping directory", "m.d", []string{".:m.d", "all:m.d"}, ""},
		{"missing file", "etc/nope.yaml", []string{"etc:nope.yaml"}, "no such file"},
		{"link loop", "loop1/m.yaml", nil, "too many levels of symbolic links"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := resolveWatch(filepath.Join(root, tc.path))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				return
			}
			var got []string
			for dir, names := range s.names {
				rel, _ := filepath.Rel(root, dir)
				for n := range names {
					got = append(got, rel+":"+n)
				}
			}
			if s.all != "" {
				rel, _ := filepath.Rel(root, s.all)
				got = append(got, "all:"+rel)
			}
			slices.Sort(got)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("watch %v, want %v", got, tc.want)
			}
		})
	}
}
