package mapping

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digest := func() string {
		t.Helper()
		d, err := Digest(dir)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	write("a.yaml", "version: 1\nvms: {}\n")
	d1 := digest()
	if d1 != digest() {
		t.Fatal("digest of unchanged files changed")
	}
	write(".a.yaml.swp", "editor junk")
	write("notes.txt", "not mapping")
	if digest() != d1 {
		t.Fatal("files Load ignores changed the digest")
	}
	write("a.yaml", "version: 1\nvms: {} \n")
	d2 := digest()
	if d2 == d1 {
		t.Fatal("a content change did not change the digest")
	}
	if err := os.Rename(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	if digest() == d2 {
		t.Fatal("a rename did not change the digest")
	}
	if _, err := Digest(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("digest of a missing file: no error")
	}
	// A file that cannot be read is named once.
	dangling := filepath.Join(dir, "c.yaml")
	if err := os.Symlink("nowhere", dangling); err != nil {
		t.Fatal(err)
	}
	want := "digest of mapping " + dir + ": open " + dangling + ": no such file or directory"
	if _, err := Digest(dir); err == nil || err.Error() != want {
		t.Fatalf("digest with a dangling link: %v, want %q", err, want)
	}
}
