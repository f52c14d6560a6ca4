//go:build unix

package mapping_test

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// TestLoadSkipsFIFOs checks that a FIFO in a mapping directory is reported,
// not read: reading it would block the load forever.
func TestLoadSkipsFIFOs(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": "version: 1\nvms: {}\n"})
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("cannot make a FIFO here:", err)
	}
	_, err := mapping.Load(dir)
	diffLines(t, problems(t, err), []string{fifo + `: cannot read: open: not a regular file`})
}
