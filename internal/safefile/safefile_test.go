package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	toRegular := filepath.Join(dir, "link")
	if err := os.Symlink(regular, toRegular); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		limit      int64
		want       string // the data, or a part of the error
		wantErr    bool
	}{
		{"regular", regular, 100, "0123456789", false},
		{"at the limit", regular, 10, "0123456789", false},
		{"no limit", regular, 0, "0123456789", false},
		{"link to a regular file", toRegular, 100, "0123456789", false},
		{"over the limit", regular, 9, "10 bytes, more than the limit of 9 bytes", true},
		{"FIFO", fifo, 100, "not a regular file (a FIFO)", true},
		{"link to /dev/zero", zero, 100, "not a regular file (a character device)", true},
		{"directory", dir, 100, "not a regular file (a directory)", true},
		{"missing", filepath.Join(dir, "missing"), 100, "no such file", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var data []byte
			var err error
			go func() {
				defer close(done)
				data, err = ReadFile(tc.path, tc.limit)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ReadFile blocked")
			}
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one with %q", err, tc.want)
				}
				return
			}
			if err != nil || string(data) != tc.want {
				t.Fatalf("got %q, %v; want %q", data, err, tc.want)
			}
		})
	}
}

func TestTooBigIsTyped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p, 10)
	var tb *TooBigError
	if !errors.As(err, &tb) || tb.Size != 100 || tb.Limit != 10 {
		t.Fatalf("error %v, want a TooBigError of 100 over 10", err)
	}
}
