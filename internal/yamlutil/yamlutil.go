// Package yamlutil is the strict YAML reader shared by the mapping and config
// loaders. It walks yaml.v3 nodes instead of unmarshalling into structs so
// that every problem (unknown key, duplicate key, wrong type, bad value) is
// collected, not only the first, and each is reported as "file:line: problem".
package yamlutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/virtbgp/virtbgp/fileerr"
)

// Reader collects problems while walking the nodes of one file.
type Reader struct {
	File string
	Errs fileerr.ErrorList
}

// Errorf records a problem at node n (n may be nil: no line).
func (r *Reader) Errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	r.Errs = append(r.Errs, fileerr.Error{File: r.File, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Err returns the sorted problems as an fileerr.ErrorList, or nil.
func (r *Reader) Err() error {
	if len(r.Errs) == 0 {
		return nil
	}
	r.Errs.Sort()
	return r.Errs
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse reads one YAML document and returns its top-level node, or nil for an
// empty document. A syntax error is recorded with its line and nil returned.
// More than one document in a file is an error.
func (r *Reader) Parse(data []byte) *yaml.Node {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data)) // no copy of data
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		r.syntax(err, data)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		r.Errorf(&extra, "more than one YAML document in the file")
	} else if !errors.Is(err, io.EOF) {
		r.syntax(err, data) // a broken second document is still an error
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

// syntax records a yaml.v3 syntax error. yaml.v3 leaves the line out of
// errors on the first line (and of a few others); those are put on line 1 so
// that every problem has a line.
//
// yaml.v3 gives no line for bytes it refuses (a NUL, a control character,
// bad UTF-8); those are put on the line of the first such byte in data.
func (r *Reader) syntax(err error, data []byte) {
	msg := err.Error()
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		r.Errs = append(r.Errs, fileerr.Error{File: r.File, Line: line, Msg: "YAML syntax: " + m[2]})
		return
	}
	line := 1
	if at := badByte(data); at >= 0 {
		line += bytes.Count(data[:at], []byte{'\n'})
	}
	r.Errs = append(r.Errs, fileerr.Error{File: r.File, Line: line, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")})
}

// badByte returns the offset of the first byte that YAML does not allow
// in a document (bad UTF-8, or a control character other than tab, line
// feed and carriage return), or -1.
func badByte(data []byte) int {
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			if (c < ' ' && c != '\t' && c != '\n' && c != '\r') || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff {
			return i
		}
		i += size
	}
	return -1
}

// MaxQuoted bounds a value quoted in a message (Describe, Quote): a huge
// value is cut, so that log lines and status stay small.
const MaxQuoted = 64

// Quote quotes a value for a message, cut to MaxQuoted bytes.
func Quote(s string) string { return strconv.Quote(fileerr.Clip(s, MaxQuoted)) }

// Field is one allowed key of a YAML mapping and what to do with its value.
type Field struct {
	Key string
	Do  func(key, value *yaml.Node)
}

// Map walks the mapping node n: every key must be one of fields and appear
// once; the matching Do is called with the key and value nodes in file order.
// what names the mapping in messages ("bgp", "peer").
func (r *Reader) Map(n *yaml.Node, what string, fields ...Field) {
	r.MapFunc(n, func() string { return what }, fields...)
}

// MapFunc is Map for a mapping whose name is costly to make: what is only
// called for a message.
func (r *Reader) MapFunc(n *yaml.Node, what func() string, fields ...Field) {
	if n.Kind != yaml.MappingNode {
		r.kind(n, yaml.MappingNode, what(), "a mapping")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !r.scalarKey(k) {
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			r.Errorf(k, "%s: duplicate key %s (first at line %d)", what(), Quote(k.Value), prev)
			continue
		}
		seen[k.Value] = k.Line
		idx := slices.IndexFunc(fields, func(f Field) bool { return f.Key == k.Value })
		if idx < 0 {
			keys := make([]string, len(fields))
			for j, f := range fields {
				keys[j] = f.Key
			}
			r.Errorf(k, "%s: unknown key %s (allowed: %s)", what(), Quote(k.Value), strings.Join(keys, ", "))
			continue
		}
		if r.noAlias(v) {
			fields[idx].Do(k, v)
		}
	}
}

// Pairs walks a mapping node whose keys are free-form (names): it checks
// duplicates and calls do for each key/value in file order.
func (r *Reader) Pairs(n *yaml.Node, what string, do func(key, value *yaml.Node)) {
	if !r.kind(n, yaml.MappingNode, what, "a mapping") {
		return
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !r.scalarKey(k) {
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			r.Errorf(k, "%s: duplicate key %s (first at line %d)", what, Quote(k.Value), prev)
			continue
		}
		seen[k.Value] = k.Line
		if r.noAlias(v) {
			do(k, v)
		}
	}
}

func (r *Reader) scalarKey(k *yaml.Node) bool {
	if k.Kind != yaml.ScalarNode {
		r.Errorf(k, "a key must be a plain string")
		return false
	}
	if k.Value == "<<" && k.Tag == "!!merge" {
		r.Errorf(k, "YAML merge keys (<<) are not supported")
		return false
	}
	return true
}

// noAlias rejects anchors' aliases: they would let a small file expand into
// a huge one, and the mapping has defaults for sharing attributes.
func (r *Reader) noAlias(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		r.Errorf(n, "YAML aliases (*%s) are not supported", n.Value)
		return false
	}
	return true
}

// Seq returns the items of a sequence node, or records an error and returns
// nil. Alias items are rejected and left out.
func (r *Reader) Seq(n *yaml.Node, what string) []*yaml.Node {
	if !r.kind(n, yaml.SequenceNode, what, "a list") {
		return nil
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, it := range n.Content {
		if r.noAlias(it) {
			out = append(out, it)
		}
	}
	return out
}

// kind checks that n has the given kind; what and want make the message.
func (r *Reader) kind(n *yaml.Node, k yaml.Kind, what, want string) bool {
	if n.Kind == k {
		return true
	}
	if n.Kind == yaml.AliasNode {
		r.noAlias(n)
		return false
	}
	r.Errorf(n, "%s: want %s, got %s", what, want, Describe(n))
	return false
}

// Describe names what a node holds, for messages: "a list", "a mapping",
// "the string \"x\"", "null".
func Describe(n *yaml.Node) string {
	v := fileerr.Clip(n.Value, MaxQuoted)
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(v)
		}
		if q := strconv.Quote(v); q[1:len(q)-1] != v {
			return q // keep a message on one line
		}
		return v
	}
	return "nothing"
}

// String returns a scalar's text. Any scalar but null is accepted (a name
// may look like a number).
func (r *Reader) String(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		r.Errorf(n, "%s: want a string, got %s", what, Describe(n))
		return "", false
	}
	return n.Value, true
}

// Uint returns an integer scalar in [lo, hi].
func (r *Reader) Uint(n *yaml.Node, what string, lo, hi uint64) (uint64, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		s := strings.ReplaceAll(n.Value, "_", "")
		if v, err := strconv.ParseUint(s, 0, 64); err == nil && v >= lo && v <= hi {
			return v, true
		}
	}
	r.Errorf(n, "%s: want an integer from %d to %d, got %s", what, lo, hi, Describe(n))
	return 0, false
}

// Uint32 is Uint for the common [lo, 2^32-1] range.
func (r *Reader) Uint32(n *yaml.Node, what string, lo uint32) (uint32, bool) {
	v, ok := r.Uint(n, what, uint64(lo), math.MaxUint32)
	return uint32(v), ok
}

// Bool returns a true/false scalar.
func (r *Reader) Bool(n *yaml.Node, what string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, true
		}
	}
	r.Errorf(n, "%s: want true or false, got %s", what, Describe(n))
	return false, false
}

// Addr returns an IP address scalar (no zone).
func (r *Reader) Addr(n *yaml.Node, what string) (netip.Addr, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		if a, err := netip.ParseAddr(n.Value); err == nil && a.Zone() == "" {
			return a, true
		}
	}
	r.Errorf(n, "%s: want an IP address, got %s", what, Describe(n))
	return netip.Addr{}, false
}
