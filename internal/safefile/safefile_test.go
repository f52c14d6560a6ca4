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

// TestInDir: a state file is read only as a regular file inside its
// directory, never through a link leading out of it nor from a FIFO, and
// within its limit;
// a write replaces it atomically and never follows a link planted at the
// temporary name.
func TestInDir(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "state.json.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := WriteInDir(dir, "state.json", []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "secret" {
		t.Fatalf("the write followed the link at the temporary name: victim now %q", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "state.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.json: %v, %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "state.json.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary name is left: %v", err)
	}
	if b, err := ReadInDir(dir, "state.json", 100); err != nil || string(b) != `{"a":1}` {
		t.Fatalf("ReadInDir = %q, %v", b, err)
	}

	if err := os.Symlink(victim, filepath.Join(dir, "out.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		limit int64
		want  func(error) bool
	}{
		{"missing.json", 100, func(err error) bool { return errors.Is(err, os.ErrNotExist) }},
		{"out.json", 100, func(err error) bool { return err != nil }},
		{"fifo.json", 100, func(err error) bool { return errors.Is(err, ErrNotRegular) }},
		{"state.json", 3, func(err error) bool { var tb *TooBigError; return errors.As(err, &tb) }},
	}
	for _, tt := range tests {
		if b, err := ReadInDir(dir, tt.name, tt.limit); !tt.want(err) {
			t.Errorf("ReadInDir(%s) = %q, %v", tt.name, b, err)
		}
	}
}
