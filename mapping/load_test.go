package mapping_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// writeFiles creates files (name -> contents) in a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDirectoryMerges(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": string(doc(
			"version: 1",
			"defaults: {med: 10}",
			"vms:",
			"  web-01: {ips: [192.0.2.1]}",
		)),
		"b.yml": string(doc(
			"version: 1",
			"defaults: {local-pref: 300}", // a.yaml's defaults do not apply here
			"vms:",
			"  web-02: {ips: [192.0.2.2]}",
			"  6695eb01-f6a4-8304-79aa-97f2502e193f: {ips: [2001:db8::2]}",
		)),
		// Ignored: hidden files, other extensions, directories, and
		// anything in subdirectories.
		".hidden.yaml":     "not: [valid",
		"notes.txt":        "not: [valid",
		"c.yaml~":          "not: [valid",
		"c.yaml.bak":       "not: [valid",
		"sub.yaml/x.yaml":  "not: [valid",
		"sub/d.yaml":       "not: [valid",
		".git/config.yaml": "not: [valid",
	})
	m, err := mapping.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := map[string][]string{
		"web-01":                               {"192.0.2.1/32 next-hop self med 10"},
		"web-02":                               {"192.0.2.2/32 next-hop self local-pref 300"},
		"6695eb01-f6a4-8304-79aa-97f2502e193f": {"2001:db8::2/128 next-hop self local-pref 300"},
	}
	if got := routeStrings(m); !reflect.DeepEqual(got, want) {
		t.Errorf("routes:\n got %q\nwant %q", got, want)
	}
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yml")
	if got := m.Sources(); !slices.Equal(got, []string{a, b}) {
		t.Errorf("Sources() = %q, want %q", got, []string{a, b})
	}
	var places []string
	for _, v := range m.VMs() {
		places = append(places, v.Key+"@"+filepath.Base(v.File)+":"+strconv.Itoa(v.Line))
	}
	if want := []string{"6695eb01-f6a4-8304-79aa-97f2502e193f@b.yml:5", "web-01@a.yaml:4", "web-02@b.yml:4"}; !slices.Equal(places, want) {
		t.Errorf("VMs() places = %q, want %q", places, want)
	}
}

func TestIsMappingFile(t *testing.T) {
	for name, want := range map[string]bool{
		"a.yaml": true, "b.yml": true, "/etc/virtbgp/mapping.d/web.yaml": true, "x.y.yaml": true,
		".hidden.yaml": false, "/dir/.a.yaml.swp": false, ".yaml": false, "notes.txt": false,
		"c.yaml~": false, "c.yaml.bak": false, "4913": false, "": false, "YAML": false,
	} {
		if got := mapping.IsMappingFile(name); got != want {
			t.Errorf("IsMappingFile(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestLoadDirectoryConflicts(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": string(doc(
			"version: 1",
			"vms:",
			"  web-01:",
			"    ips: [192.0.2.1]",
			"  web-02:",
			"    uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f",
			"    ips: [192.0.2.64/28]",
		)),
		"b.yaml": string(doc(
			"version: 1",
			"vms:",
			"  web-03:",
			"    ips: [192.0.2.3]",
			"  web-01:",
			"    ips: [192.0.2.1]", // not reported: the entry is a duplicate
			"  6695EB01-F6A4-8304-79AA-97F2502E193F:",
			"    ips: [192.0.2.70]",
			"  web-04:",
			"    ips: [192.0.2.1]",
		)),
		"c.yaml": string(doc("version: 1", "vms:", "  web-05: {ips: [127.0.0.1]}")),
	})
	_, err := mapping.Load(dir)
	a, b, c := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.yaml")
	diffLines(t, problems(t, err), []string{
		b + `:5: vm "web-01" is already defined at ` + a + `:3`,
		b + `:7: vm "6695eb01-f6a4-8304-79aa-97f2502e193f": uuid 6695eb01-f6a4-8304-79aa-97f2502e193f is already used by vm "web-02" at ` + a + `:6`,
		b + `:8: vm "6695eb01-f6a4-8304-79aa-97f2502e193f": 192.0.2.70/32 overlaps 192.0.2.64/28 of vm "web-02" at ` + a + `:7`,
		b + `:10: vm "web-04": 192.0.2.1/32 is already mapped to vm "web-01" at ` + a + `:4`,
		c + `:3: vm "web-05": 127.0.0.1 is a reserved address (loopback)`,
	})
}

func TestLoadFileProblems(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": "version: 1\nvms: {}\n",
		"b.yaml": "",
	})
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "d.yaml")); err != nil {
		t.Fatal(err)
	}
	_, err := mapping.Load(dir)
	b, c := filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.yaml")
	diffLines(t, problems(t, err), []string{
		b + `:1: the file is empty (want at least "version: 1" and "vms")`,
		c + `: cannot read: open: no such file or directory`,
	})

	empty := t.TempDir()
	_, err = mapping.Load(empty)
	diffLines(t, problems(t, err), []string{empty + `: no *.yaml or *.yml file in the directory`})

	missing := filepath.Join(empty, "nope.yaml")
	_, err = mapping.Load(missing)
	diffLines(t, problems(t, err), []string{missing + `: cannot read: stat: no such file or directory`})
}

func TestLoadFollowsLinks(t *testing.T) {
	src := writeFiles(t, map[string]string{
		"a.yaml":        string(doc("version: 1", "vms:", "  web-01: {ips: [192.0.2.1]}")),
		"d.yaml/x.yaml": "", // a directory, linked below: skipped
	})
	dir := t.TempDir()
	for name, target := range map[string]string{"a.yaml": "a.yaml", "d.yaml": "d.yaml"} {
		if err := os.Symlink(filepath.Join(src, target), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := mapping.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if key, _ := m.Lookup("web-01", ""); key != "web-01" {
		t.Errorf("the linked file was not read")
	}
}

// TestLoadSingleFile checks that Load of a file reads it whatever its name.
func TestLoadSingleFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{"mapping.conf": "version: 1\nvms: {a: {ips: [192.0.2.1]}}\n"})
	path := filepath.Join(dir, "mapping.conf")
	m, err := mapping.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := m.Sources(); !slices.Equal(got, []string{path}) {
		t.Errorf("Sources() = %q", got)
	}
}
