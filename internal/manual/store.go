package manual

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/virtbgp/virtbgp/internal/safefile"
)

// FileName is the state file of the manual routes in the state directory.
const FileName = "manual-routes.json"

// maxFileBytes bounds what Load reads: far more than any real set.
const maxFileBytes = 16 << 20

// fileVersion is the state file's format.
const fileVersion = 1

type file struct {
	Version int     `json:"version"`
	Routes  []Route `json:"routes"`
}

// Load reads the manual routes from path. A missing file is no routes.
// Leases that ended before now are dropped. A file that is not what Save
// writes is an error naming the file: the daemon must not start with a
// guess at the routes.
func Load(path string, now time.Time) (map[netip.Prefix]Route, error) {
	data, err := safefile.ReadInDir(filepath.Dir(path), filepath.Base(path), maxFileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return map[netip.Prefix]Route{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manual routes: %w", err)
	}
	routes, err := Parse(data, now)
	if err != nil {
		return nil, fmt.Errorf("manual routes: %s: %w", path, err)
	}
	return routes, nil
}

// Parse decodes a state file's content: unknown fields, a route that the
// mapping's rules refuse and a prefix listed twice are errors.
func Parse(data []byte, now time.Time) (map[netip.Prefix]Route, error) {
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
	out := make(map[netip.Prefix]Route, len(fl.Routes))
	for i, r := range fl.Routes {
		if _, err := r.BGP(); err != nil {
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		if _, dup := out[r.Prefix]; dup {
			return nil, fmt.Errorf("routes[%d]: %s listed twice", i, r.Prefix)
		}
		if !r.Expires.IsZero() && !r.Expires.After(now) {
			continue
		}
		out[r.Prefix] = r
	}
	return out, nil
}

// Sorted returns the routes sorted by prefix.
func Sorted(routes map[netip.Prefix]Route) []Route {
	out := make([]Route, 0, len(routes))
	for _, r := range routes {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Route) int { return a.Prefix.Compare(b.Prefix) })
	return out
}

// Save writes the routes to path atomically (safefile.WriteInDir): a
// crash leaves the old file or the new one, never a mix.
func Save(path string, routes map[netip.Prefix]Route) error {
	data, err := json.MarshalIndent(file{Version: fileVersion, Routes: Sorted(routes)}, "", "  ")
	if err != nil {
		return fmt.Errorf("manual routes: encode: %w", err)
	}
	if err := safefile.WriteInDir(filepath.Dir(path), filepath.Base(path), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("manual routes: write %s: %w", path, err)
	}
	return nil
}
