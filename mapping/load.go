package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/virtbgp/virtbgp/internal/safefile"
)

// Load reads the mapping at path: a YAML file, or a directory, which means
// every file directly in it (not in subdirectories) whose name IsMappingFile
// accepts, read in name order and merged into one mapping. Each file has its
// own version and defaults; an entry or a prefix defined in two files is an
// error, reported with both places.
//
// On failure the error is an ErrorList with every problem found in every
// file, sorted by file and line.
//
// Only regular files are read (a FIFO or a device at the path is an error,
// not a hang), and at most DefaultMaxBytes in all: see LoadMax.
func Load(path string) (*Mapping, error) {
	return LoadMax(path, DefaultMaxBytes)
}

// DefaultMaxBytes is the most Load reads of a mapping's files, in all.
const DefaultMaxBytes = 256 << 20

// LoadMax is Load reading at most maxBytes of the mapping's files in all
// (maxBytes <= 0: no limit); a mapping bigger than that is an error.
func LoadMax(path string, maxBytes int64) (*Mapping, error) {
	b := newBuilder()
	b.budget = maxBytes
	files, err := mappingFiles(path)
	if err != nil {
		return nil, ErrorList{fileError(path, err)}
	}
	if len(files) == 0 {
		return nil, ErrorList{{File: path, Msg: "no *.yaml or *.yml file in the directory"}}
	}
	for _, f := range files {
		b.loadFile(f)
	}
	return b.finish()
}

// loadFile reads the file at path into the builder: in chunks straight
// from the file if it is big (see chunk.go), else, or if that fails, in one
// piece.
func (b *builder) loadFile(path string) {
	b.sources = append(b.sources, path)
	if b.budget > 0 && b.read >= b.budget {
		b.errs = append(b.errs, fileError(path, &fs.PathError{Op: "read", Path: path, Err: &safefile.TooBigError{Size: b.read + 1, Limit: b.budget}}))
		return
	}
	limit := int64(0)
	if b.budget > 0 {
		limit = b.budget - b.read
	}
	f, st, err := safefile.Open(path, limit)
	if err != nil {
		b.errs = append(b.errs, fileError(path, err))
		return
	}
	defer f.Close()
	b.read += st.Size()
	if st.Size() >= int64(b.chunkMin) && b.addChunked(path, f, st.Size()) {
		return
	}
	data, err := safefile.ReadAll(f, st.Size(), limit) // the reference, whose errors are reported
	if err != nil {
		b.errs = append(b.errs, fileError(path, err))
		return
	}
	b.addWhole(path, data)
}

// Parse reads a mapping from the contents of one file; file names it in
// messages. On failure the error is an ErrorList with every problem found.
func Parse(file string, data []byte) (*Mapping, error) {
	b := newBuilder()
	b.addData(file, data)
	return b.finish()
}

// addData reads the contents of one file into the builder: in chunks if
// they are big, else, or if that fails, in one piece.
func (b *builder) addData(file string, data []byte) {
	b.sources = append(b.sources, file)
	if len(data) >= b.chunkMin && b.addChunked(file, bytes.NewReader(data), int64(len(data))) {
		return
	}
	b.addWhole(file, data)
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
		if !IsMappingFile(name) {
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

// IsMappingFile reports whether a file of this name in a mapping directory
// is one of the mapping's files: its name ends in ".yaml" or ".yml" and does
// not start with a dot (editors' and tools' temporary files do). For a path,
// its last element is the name. A watcher of a mapping directory can use it
// to ignore changes to other files.
func IsMappingFile(name string) bool {
	name = filepath.Base(name)
	return !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"))
}

// fileError reports an error reading file (or the file the error names),
// without repeating the name.
func fileError(file string, err error) Error {
	var pe *fs.PathError
	var big *safefile.TooBigError
	if errors.As(err, &big) {
		return Error{File: file, Msg: fmt.Sprintf("too big: the mapping may have at most %d bytes in all (mapping.max-bytes)", big.Limit)}
	}
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
//
// The entries and prefixes are kept in plain slices, sized up front from an
// estimate when a big file is read in chunks, so that finish can sort them
// in place and hand them to the Mapping: no second copy of either is ever
// alive next to the first.
type builder struct {
	errs    ErrorList
	sources []string
	budget  int64              // the most bytes to read of all files (0: no limit)
	read    int64              // the bytes of the files opened so far
	vms     []VM               // in the order read
	vmx     []vmExtra          // what else is known of vms[i] while loading
	ents    []prefixEntry      // every mapped prefix; vm indexes vms
	keys    map[string]int32   // key -> index in vms
	pins    map[string]int32   // uuid pin -> index in vms
	nums    map[uint32]*uint32 // MED and local-pref values, shared
	block   []Route            // the free part of the current block of routes
	routes  int

	// chunkMin and chunkSize tune the chunked reading (tests lower them).
	chunkMin, chunkSize int
	// chunked counts the files read in chunks, for tests.
	chunked int
}

// vmRec is an entry while it is read.
type vmRec struct {
	VM
	uuidLine int // line of the uuid pin
}

// vmExtra is what the builder keeps of an entry besides its VM.
type vmExtra struct {
	uuidLine int32 // line of the uuid pin
	dup      bool  // the key is defined earlier: the entry is ignored
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

// pushVM appends an entry that has been read.
func (b *builder) pushVM(r *vmRec) {
	b.vms = append(b.vms, r.VM)
	b.vmx = append(b.vmx, vmExtra{uuidLine: int32(r.uuidLine)})
}

// uuidLine returns the line of the uuid pin of vms[i].
func (b *builder) uuidLine(i int32) int { return int(b.vmx[i].uuidLine) }

// reserve makes room for about vms more entries and ents more prefixes.
func (b *builder) reserve(vms, ents int) {
	b.vms = slices.Grow(b.vms, vms)
	b.vmx = slices.Grow(b.vmx, vms)
	b.ents = slices.Grow(b.ents, ents)
	if len(b.keys) == 0 && vms > 0 {
		b.keys = make(map[string]int32, vms)
	}
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

// addWhole reads one file into the builder in one piece.
func (b *builder) addWhole(file string, data []byte) {
	vms0 := len(b.vms)
	p := newFileParser(b, file)
	p.walkWhole(data)
	b.errs = append(b.errs, p.r.Errs...)
	b.commit(vms0, false)
}

// commit registers the entries read from the last file, from vms[from]:
// each key must be new, and each UUID (a key or a pin) may stand for one
// entry only.
//
// For a file read in chunks (chunked), a key defined twice in the file
// (which only a read in one piece reports as it should) undoes the commit
// and returns false.
func (b *builder) commit(from int, chunked bool) bool {
	errs0, routes0 := len(b.errs), b.routes
	for i := from; i < len(b.vms); i++ {
		v := &b.vms[i]
		if j, dup := b.keys[v.Key]; dup {
			if chunked && int(j) >= from {
				b.uncommit(from, i, errs0, routes0)
				return false
			}
			o := &b.vms[j]
			b.errorf(v.File, v.Line, "vm %q is already defined at %s:%d", v.Key, o.File, o.Line)
			b.vmx[i].dup = true
			continue
		}
		b.keys[v.Key] = int32(i)
		b.routes += len(v.Routes)
		switch {
		case v.UUID == "":
		case v.keyedByUUID():
			if j, ok := b.pins[v.UUID]; ok {
				b.uuidConflict(v, v.Line, &b.vms[j], b.uuidLine(j))
			}
		default:
			if j, ok := b.keys[v.UUID]; ok {
				b.uuidConflict(v, b.uuidLine(int32(i)), &b.vms[j], b.vms[j].Line)
			} else if j, ok := b.pins[v.UUID]; ok {
				b.uuidConflict(v, b.uuidLine(int32(i)), &b.vms[j], b.uuidLine(j))
			} else {
				b.pins[v.UUID] = int32(i)
			}
		}
	}
	return true
}

// uncommit undoes what commit did for vms[from:to].
func (b *builder) uncommit(from, to, errs0, routes0 int) {
	for i := from; i < to; i++ {
		v := &b.vms[i]
		if b.vmx[i].dup {
			b.vmx[i].dup = false
			continue
		}
		if j, ok := b.keys[v.Key]; ok && int(j) == i {
			delete(b.keys, v.Key)
		}
		if j, ok := b.pins[v.UUID]; ok && v.UUID != "" && int(j) == i {
			delete(b.pins, v.UUID)
		}
	}
	b.errs, b.routes = b.errs[:errs0], routes0
}

// uuidConflict reports that v (at line) claims the UUID that o (at oline)
// already claims: the same domain would be mapped twice.
func (b *builder) uuidConflict(v *VM, line int, o *VM, oline int) {
	b.errorf(v.File, line, "vm %q: uuid %s is already used by vm %q at %s:%d", v.Key, v.UUID, o.Key, o.File, oline)
}

// number returns a pointer to the value v, shared by every route with
// this MED or local-pref.
func (b *builder) number(v uint32) *uint32 {
	p, ok := b.nums[v]
	if !ok {
		p = new(uint32) // not &v: v would be on the heap on every call
		*p = v
		b.nums[v] = p
	}
	return p
}

// checkPrefixes sorts the mapped prefixes in place and reports every one
// that is mapped twice or lies inside another: O(n log n), one sort and one
// sweep.
func (b *builder) checkPrefixes() {
	ents := b.ents
	slices.SortFunc(ents, func(x, y prefixEntry) int {
		if c := compareEntry(&x, &y); c != 0 {
			return c
		}
		if x.vm != y.vm {
			return int(x.vm - y.vm) // the one read first first
		}
		return int(x.line - y.line)
	})
	nestedConflicts(len(ents),
		func(i int) (netip.Prefix, bool) { return ents[i].prefix(), !b.vmx[ents[i].vm].dup },
		func(i, outer int) {
			if !anycastPeers(&ents[i], &ents[outer]) {
				b.prefixConflict(&ents[i], &ents[outer])
			}
		})
}

// prefixConflict reports that e is o's prefix again, or lies inside it.
func (b *builder) prefixConflict(e, o *prefixEntry) {
	v, ov := &b.vms[e.vm], &b.vms[o.vm]
	ep, op := e.prefix(), o.prefix()
	switch {
	case ep == op && e.vm != o.vm && e.anycast != o.anycast:
		at, notAt := where(e, v), where(o, ov)
		if !e.anycast {
			at, notAt = notAt, at
		}
		b.errorf(v.File, int(e.line), "vm %q: %s is anycast at %s but not at %s (mark every claim of an anycast IP \"anycast: true\")",
			v.Key, ep, at, notAt)
	case ep != op:
		b.errorf(v.File, int(e.line), "vm %q: %s overlaps %s of vm %q at %s:%d",
			v.Key, ep, op, ov.Key, ov.File, o.line)
	case e.vm == o.vm:
		b.errorf(v.File, int(e.line), "vm %q: %s is listed twice (first at line %d)", v.Key, ep, o.line)
	default:
		b.errorf(v.File, int(e.line), "vm %q: %s is already mapped to vm %q at %s:%d",
			v.Key, ep, ov.Key, ov.File, o.line)
	}
}

// finish runs the checks across entries and builds the Mapping. It sorts
// the entries by key in place, and gives them, and the prefixes, to the
// Mapping.
func (b *builder) finish() (*Mapping, error) {
	b.checkPrefixes()
	if len(b.errs) > 0 {
		b.errs.Sort()
		return nil, b.errs
	}
	vms, ents := b.vms, b.ents
	// A slice that grew by append may have much room to spare; the estimate
	// of a chunked read may be high.
	if cap(vms)-len(vms) > len(vms)/4 {
		vms = slices.Clone(vms)
	}
	if cap(ents)-len(ents) > len(ents)/4 {
		ents = slices.Clone(ents)
	}
	b.vms, b.vmx, b.ents = nil, nil, nil
	order := make([]int32, len(vms)) // order[i]: the index of the entry that goes to i
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int { return strings.Compare(vms[x].Key, vms[y].Key) })
	where := make([]int32, len(order)) // the index in the sorted vms of each entry
	for i, j := range order {
		where[j] = int32(i)
	}
	permute(vms, order)
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

// permute moves s[order[i]] to s[i], for every i, in place (one cycle of
// the permutation after another). It overwrites order.
func permute[T any](s []T, order []int32) {
	for i := range s {
		if order[i] < 0 || int(order[i]) == i {
			continue
		}
		tmp := s[i]
		j := i
		for {
			k := int(order[j])
			order[j] = -1
			if k == i {
				s[j] = tmp
				break
			}
			s[j] = s[k]
			j = k
		}
	}
}

// anycastPeers reports whether e and o are claims of one anycast IP by two
// entries, which is allowed.
func anycastPeers(e, o *prefixEntry) bool {
	return e.anycast && o.anycast && e.vm != o.vm && e.bits == o.bits && e.hi == o.hi && e.lo == o.lo && e.is6 == o.is6
}

// where returns "file:line" of the prefix e of entry v, for messages.
func where(e *prefixEntry, v *VM) string {
	return fmt.Sprintf("%s:%d", v.File, e.line)
}
