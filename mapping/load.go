package mapping

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Load reads the mapping at path: a YAML file, or a directory, which means
// every *.yaml and *.yml file directly in it (not in subdirectories; names
// starting with a dot are ignored), read in name order and merged into one
// mapping. Each file has its own version and defaults; an entry or a prefix
// defined in two files is an error, reported with both places.
//
// On failure the error is an ErrorList with every problem found in every
// file, sorted by file and line.
func Load(path string) (*Mapping, error) {
	b := newBuilder()
	files, err := mappingFiles(path)
	if err != nil {
		return nil, ErrorList{fileError(path, err)}
	}
	if len(files) == 0 {
		return nil, ErrorList{{File: path, Msg: "no *.yaml or *.yml file in the directory"}}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.sources = append(b.sources, f)
			b.errs = append(b.errs, fileError(f, err))
			continue
		}
		b.addFile(f, data)
	}
	return b.finish()
}

// Parse reads a mapping from the contents of one file; file names it in
// messages. On failure the error is an ErrorList with every problem found.
func Parse(file string, data []byte) (*Mapping, error) {
	b := newBuilder()
	b.addFile(file, data)
	return b.finish()
}

// errNotRegular is why a directory member that is neither a regular file nor
// a directory (a FIFO, a device) is not read: reading could block forever.
var errNotRegular = errors.New("not a regular file")

// mappingFiles returns the files that make up the mapping at path.
func mappingFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		full := filepath.Join(path, name)
		// Stat follows symbolic links: a link to a file counts, a link to
		// a directory does not, a dangling link is reported when read.
		if st, err := os.Stat(full); err == nil {
			if st.IsDir() {
				continue
			}
			if !st.Mode().IsRegular() {
				return nil, &fs.PathError{Op: "open", Path: full, Err: errNotRegular}
			}
		}
		files = append(files, full)
	}
	return files, nil
}

// fileError reports an error reading file (or the file the error names),
// without repeating the name.
func fileError(file string, err error) Error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return Error{File: pe.Path, Msg: fmt.Sprintf("cannot read: %s: %v", pe.Op, pe.Err)}
	}
	return Error{File: file, Msg: fmt.Sprintf("cannot read: %v", err)}
}

// Tuning of the chunked reading of big files (see chunk.go).
const (
	chunkMinFile = 256 << 10 // files at least this big are read in chunks
	chunkSize    = 64 << 10  // of about this size
	routeBlock   = 1024      // routes are allocated in blocks of this many
)

// builder collects the files of one Load or Parse, then checks what spans
// entries and files, and builds the Mapping.
type builder struct {
	errs    ErrorList
	sources []string
	vms     blockList[vmRec]       // in the order read
	ents    blockList[prefixEntry] // every mapped prefix; vm indexes vms
	keys    map[string]int32       // key -> index in vms
	pins    map[string]int32       // uuid pin -> index in vms
	nums    map[uint32]*uint32     // MED and local-pref values, shared
	block   []Route                // the free part of the current block of routes
	routes  int

	// chunkMin and chunkSize tune the chunked reading (tests lower them).
	chunkMin, chunkSize int
	// chunked counts the files read in chunks, for tests.
	chunked int
}

// vmRec is an entry while loading.
type vmRec struct {
	VM
	uuidLine int  // line of the uuid pin
	dup      bool // the key is defined earlier: the entry is ignored
}

func newBuilder() *builder {
	return &builder{
		keys:      make(map[string]int32),
		pins:      make(map[string]int32),
		nums:      make(map[uint32]*uint32),
		chunkMin:  chunkMinFile,
		chunkSize: chunkSize,
	}
}

func (b *builder) errorf(file string, line int, format string, args ...any) {
	b.errs = append(b.errs, Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// allocRoutes returns an empty slice with room for n routes, carved out of a
// block shared with other entries: fewer, bigger allocations.
func (b *builder) allocRoutes(n int) []Route {
	if n > routeBlock/8 {
		return make([]Route, 0, n)
	}
	if n > len(b.block) {
		b.block = make([]Route, routeBlock)
	}
	r := b.block[:0:n]
	b.block = b.block[n:]
	return r
}

// addFile reads one file into the builder.
func (b *builder) addFile(file string, data []byte) {
	b.sources = append(b.sources, file)
	vms0, ents0 := b.vms.len(), b.ents.len()
	if len(data) >= b.chunkMin {
		if plan, ok := planChunks(data, b.chunkSize); ok {
			p := newFileParser(b, file)
			if p.walkChunked(data, plan) {
				b.chunked++
				b.commit(vms0)
				return
			}
			// Anything unexpected: read the file again in one piece, which
			// is the reference for what the file means and says what is
			// wrong with it.
			b.vms.truncate(vms0)
			b.ents.truncate(ents0)
		}
	}
	p := newFileParser(b, file)
	p.walkWhole(data)
	b.errs = append(b.errs, p.r.Errs...)
	b.commit(vms0)
}

// commit registers the entries read from the last file, from vms[from]:
// each key must be new, and each UUID (a key or a pin) may stand for one
// entry only.
func (b *builder) commit(from int) {
	for i := from; i < b.vms.len(); i++ {
		v := b.vms.at(i)
		if j, dup := b.keys[v.Key]; dup {
			o := b.vms.at(int(j))
			b.errorf(v.File, v.Line, "vm %q is already defined at %s:%d", v.Key, o.File, o.Line)
			v.dup = true
			continue
		}
		b.keys[v.Key] = int32(i)
		b.routes += len(v.Routes)
		switch {
		case v.UUID == "":
		case v.keyedByUUID():
			if j, ok := b.pins[v.UUID]; ok {
				b.uuidConflict(v, v.Line, b.vms.at(int(j)), b.vms.at(int(j)).uuidLine)
			}
		default:
			if j, ok := b.keys[v.UUID]; ok {
				b.uuidConflict(v, v.uuidLine, b.vms.at(int(j)), b.vms.at(int(j)).Line)
			} else if j, ok := b.pins[v.UUID]; ok {
				b.uuidConflict(v, v.uuidLine, b.vms.at(int(j)), b.vms.at(int(j)).uuidLine)
			} else {
				b.pins[v.UUID] = int32(i)
			}
		}
	}
}

// uuidConflict reports that v (at line) claims the UUID that o (at oline)
// already claims: the same domain would be mapped twice.
func (b *builder) uuidConflict(v *vmRec, line int, o *vmRec, oline int) {
	b.errorf(v.File, line, "vm %q: uuid %s is already used by vm %q at %s:%d", v.Key, v.UUID, o.Key, o.File, oline)
}

// number returns a pointer to the value v, shared by every route with
// this MED or local-pref.
func (b *builder) number(v uint32) *uint32 {
	p, ok := b.nums[v]
	if !ok {
		p = &v
		b.nums[v] = p
	}
	return p
}

// checkPrefixes sorts the mapped prefixes and reports every one that is
// mapped twice or lies inside another: O(n log n), one sort and one sweep.
// It returns the sorted prefixes.
func (b *builder) checkPrefixes() []prefixEntry {
	ents := b.ents.slice()
	slices.SortFunc(ents, func(x, y prefixEntry) int {
		if c := comparePrefix(x.prefix, y.prefix); c != 0 {
			return c
		}
		if x.vm != y.vm {
			return int(x.vm - y.vm) // the one read first first
		}
		return int(x.line - y.line)
	})
	// Prefixes nest or are disjoint. In this order a prefix comes before
	// those inside it, so each prefix is checked against the outermost one
	// still open: the last one not inside another.
	outer := -1
	for i := range ents {
		e := &ents[i]
		if b.vms.at(int(e.vm)).dup {
			continue
		}
		if outer >= 0 {
			o := &ents[outer]
			if o.prefix.Bits() <= e.prefix.Bits() && o.prefix.Contains(e.prefix.Addr()) {
				b.prefixConflict(e, o)
				continue
			}
		}
		outer = i
	}
	return ents
}

// prefixConflict reports that e is o's prefix again, or lies inside it.
func (b *builder) prefixConflict(e, o *prefixEntry) {
	v, ov := b.vms.at(int(e.vm)), b.vms.at(int(o.vm))
	switch {
	case e.prefix != o.prefix:
		b.errorf(v.File, int(e.line), "vm %q: %s overlaps %s of vm %q at %s:%d",
			v.Key, e.prefix, o.prefix, ov.Key, ov.File, o.line)
	case e.vm == o.vm:
		b.errorf(v.File, int(e.line), "vm %q: %s is listed twice (first at line %d)", v.Key, e.prefix, o.line)
	default:
		b.errorf(v.File, int(e.line), "vm %q: %s is already mapped to vm %q at %s:%d",
			v.Key, e.prefix, ov.Key, ov.File, o.line)
	}
}

// finish runs the checks across entries and builds the Mapping.
func (b *builder) finish() (*Mapping, error) {
	ents := b.checkPrefixes()
	if len(b.errs) > 0 {
		b.errs.Sort()
		return nil, b.errs
	}
	order := make([]int32, b.vms.len())
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int { return strings.Compare(b.vms.at(int(x)).Key, b.vms.at(int(y)).Key) })
	vms := make([]VM, len(order))
	where := make([]int32, len(order)) // index in vms of each b.vms
	for i, j := range order {
		vms[i] = b.vms.at(int(j)).VM
		where[j] = int32(i)
	}
	for k, i := range b.keys {
		b.keys[k] = where[i]
	}
	for i := range ents {
		ents[i].vm = where[ents[i].vm]
	}
	return &Mapping{
		vms:      vms,
		keys:     b.keys,
		prefixes: ents,
		sources:  b.sources,
		routes:   b.routes,
	}, nil
}
