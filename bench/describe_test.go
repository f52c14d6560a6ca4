package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDescribe: the bench's own output does not make the tree dirty; any
// other change does.
func TestDescribe(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := git(t.Context(), root, "worktree", "add", "--detach", dir, "HEAD"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context() is already canceled when cleanups run.
		if _, err := git(context.Background(), root, "worktree", "remove", "--force", dir); err != nil {
			t.Error(err)
		}
	})
	if d := Describe(dir); !strings.HasPrefix(d, "working tree ") || strings.HasSuffix(d, "-dirty") {
		t.Fatalf("clean tree: %q", d)
	}
	if err := os.WriteFile(filepath.Join(dir, "BENCHMARKS.md"), []byte("new figures\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d := Describe(dir); strings.HasSuffix(d, "-dirty") {
		t.Errorf("after writing BENCHMARKS.md: %q, want clean", d)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d := Describe(dir); !strings.HasSuffix(d, "-dirty") {
		t.Errorf("after editing README.md: %q, want -dirty", d)
	}
}
