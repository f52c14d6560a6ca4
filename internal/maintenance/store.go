package maintenance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/virtbgp/virtbgp/internal/safefile"
)

// FileName is the state file of the maintenance entries in the state
// directory.
const FileName = "maintenance.json"

// maxFileBytes bounds what Load reads: far more than any real set.
const maxFileBytes = 4 << 20

// fileVersion is the state file's format.
const fileVersion = 1

type file struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
}

// Load reads the entries from the state directory dir: a regular file
// inside it, opened through an os.Root (nothing outside it is read).
// A missing file is no entries. Entries whose TTL ended before now are
// dropped. A file that is not what Save writes is an error naming the
// file: the daemon must not start with a guess at what is in maintenance.
func Load(dir string, now time.Time) (map[Key]Entry, error) {
	path := filepath.Join(dir, FileName)
	data, err := read(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[Key]Entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("maintenance: read %s: %w", path, err)
	}
	entries, err := Parse(data, now)
	if err != nil {
		return nil, fmt.Errorf("maintenance: %s: %w (fix or remove the file)", path, err)
	}
	return entries, nil
}

func read(dir string) ([]byte, error) {
	return safefile.ReadInDir(dir, FileName, maxFileBytes)
}

// Parse decodes a state file's content: unknown fields, an entry without
// a UUID or a creator, a bad note or TTL, and a key listed twice are
// errors.
func Parse(data []byte, now time.Time) (map[Key]Entry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var fl file
	if err := dec.Decode(&fl); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: data after the object")
	}
	if fl.Version != fileVersion {
		return nil, fmt.Errorf("version %d, want %d", fl.Version, fileVersion)
	}
	out := make(map[Key]Entry, len(fl.Entries))
	for i, e := range fl.Entries {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("entries[%d]: %w", i, err)
		}
		if _, dup := out[e.Key()]; dup {
			return nil, fmt.Errorf("entries[%d]: domain %s %s listed twice", i, e.UUID, e.Prefix)
		}
		if !e.Expires.IsZero() && !e.Expires.After(now) {
			continue
		}
		out[e.Key()] = e
	}
	return out, nil
}

// Save writes the entries to the state directory dir atomically: a new
// file created inside it (through an os.Root, never through a symbolic
// link or into a file that was already there), synced, renamed over
// FileName, and the directory synced; a crash leaves the old file or the
// new one, never a mix.
func Save(dir string, entries map[Key]Entry) error {
	data, err := json.MarshalIndent(file{Version: fileVersion, Entries: Sorted(entries)}, "", "  ")
	if err != nil {
		return fmt.Errorf("maintenance: encode: %w", err)
	}
	if err := write(dir, append(data, '\n')); err != nil {
		return fmt.Errorf("maintenance: write %s: %w", filepath.Join(dir, FileName), err)
	}
	return nil
}

func write(dir string, data []byte) error {
	return safefile.WriteInDir(dir, FileName, data, 0o600)
}
