package mapping

import (
	"bufio"
	"bytes"
	"io"
	"runtime"
	"slices"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/virtbgp/virtbgp/internal/yamlutil"
)

// Reading big files in chunks
//
// yaml.v3 builds the node tree of a whole document before anything can look
// at it, and a node takes about 150 bytes: a 100,000-entry mapping makes a
// tree of over 120 MB. A big file of the usual shape (top-level keys, "vms:"
// last, then one indented block per entry) is therefore read in pieces: the
// header up to and including the "vms:" line, then the body cut at lines
// where an entry starts, each piece read from the file, parsed on its own,
// walked and dropped before the next. Only a few pieces' trees, and none of
// the file's text but theirs, are alive at a time.
//
// Cutting YAML text without parsing it is only safe for what the cut does
// not change, so the result of a chunked read is used only when everything
// went right: every piece parses without error into a block mapping at the
// entries' indentation, and the walk finds no problem at all. Anything else
// (a syntax error in a piece, a duplicate key, any problem in the mapping)
// discards the chunked read and reads the file again in one piece, which
// is the reference for what the file means and reports its problems. A cut
// at a line that is not where an entry starts leaves an unterminated
// construct or a stray line in a piece, which then fails to parse or is not
// the expected block mapping. A fuzz test (FuzzChunked) checks that a
// chunked read that succeeds gives exactly what reading in one piece gives.

// chunkPlan is how to read a file in pieces.
type chunkPlan struct {
	headerEnd int64 // the file up to headerEnd ends with the "vms:" line
	vmsLine   int   // the line number of "vms:"
	indent    int   // the indentation of the entries under vms
	entries   int   // about how many entries there are (for sizing)
	items     int   // about how many list items there are (for sizing)
	chunks    []chunkSpan
}

// chunkSpan is one piece of the body: the bytes from start to end, whose
// first line is line number line.
type chunkSpan struct {
	start, end int64
	line       int
}

// maxPlanLine is the longest line planChunks reads; a file with a longer
// one is read in one piece.
const maxPlanLine = 64 << 10

// planChunks cuts the size bytes of r into pieces of at least size bytes
// (chunk), if the file has the shape that allows it. It reads the file once,
// a line at a time.
func planChunks(r io.ReaderAt, size int64, chunk int) (chunkPlan, bool) {
	var plan chunkPlan
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), maxPlanLine)
	plan.headerEnd = -1 // no "vms:" line yet, or a line in column 0 after it
	var start int64     // where the current piece starts
	startLine := 0
	off, line := int64(0), 0
	for ; off < size; line++ {
		l, err := br.ReadSlice('\n')
		if err != nil && (err != io.EOF || len(l) == 0) {
			return plan, false // a line too long, or the file shrank
		}
		lineStart := off
		off += int64(len(l))
		if oddLine(l) {
			return plan, false
		}
		l = bytes.TrimSuffix(l, []byte("\n"))
		n := 0
		for n < len(l) && l[n] == ' ' {
			n++
		}
		switch {
		case n == len(l) || l[n] == '#':
			// blank or comment
		case n == 0:
			// A top-level key: the body is what follows the last one, which
			// must be "vms:" alone. Directives would be missing from the
			// pieces.
			if l[0] == '%' {
				return plan, false
			}
			plan.headerEnd = -1
			if isVMsLine(l) {
				plan = chunkPlan{headerEnd: off, vmsLine: line + 1, indent: -1}
				start, startLine = off, line+2
			}
		case plan.headerEnd < 0:
			// the value of a key other than vms
		case l[n] == '\t':
			return plan, false
		case plan.indent < 0:
			plan.indent = n
			plan.entries++
		case n == plan.indent && keyStart(l[n]):
			plan.entries++
			if lineStart-start >= int64(chunk) {
				plan.chunks = append(plan.chunks, chunkSpan{start, lineStart, startLine})
				start, startLine = lineStart, line+1
			}
		case n > plan.indent && l[n] == '-' && (n+1 == len(l) || l[n+1] == ' '):
			plan.items++ // most likely an IP of a block list of ips
		}
	}
	if plan.headerEnd < 0 || plan.indent < 0 {
		return plan, false
	}
	plan.chunks = append(plan.chunks, chunkSpan{start, size, startLine})
	return plan, true
}

// oddLine reports whether the line l holds a line break other than \n, or a
// byte order mark: they would put lines elsewhere than planChunks counts
// them. (Their encodings hold no \n: none is cut in two.)
func oddLine(l []byte) bool {
	for _, c := range l {
		if c == '\r' || c >= 0x80 { // only then, the slower search
			return slices.ContainsFunc([]string{"\r", "\u0085", "\u2028", "\u2029", "\ufeff"},
				func(odd string) bool { return bytes.Contains(l, []byte(odd)) })
		}
	}
	return false
}

// isVMsLine reports whether l is "vms:" alone, maybe with a comment.
func isVMsLine(l []byte) bool {
	rest, ok := bytes.CutPrefix(l, []byte("vms:"))
	if !ok {
		return false
	}
	trimmed := bytes.TrimLeft(rest, " \t")
	return len(trimmed) == 0 || (trimmed[0] == '#' && len(trimmed) < len(rest))
}

// keyStart reports whether a line starting with c may start a plain or
// quoted key: only there is the body cut.
func keyStart(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c >= 0x80:
		return true
	}
	return c == '_' || c == '"' || c == '\'' || c == '.' || c == '/'
}

// addChunked reads the file of size bytes that r reads in chunks, and
// reports whether it could: if not, it leaves the builder as it was, for
// the caller to read the file in one piece.
func (b *builder) addChunked(file string, r io.ReaderAt, size int64) bool {
	plan, ok := planChunks(r, size, b.chunkSize)
	if !ok {
		return false
	}
	vms, vmx, ents := b.vms, b.vmx, b.ents
	b.reserve(plan.entries, plan.items)
	p := newFileParser(b, file)
	if p.walkChunked(r, plan) && b.commit(len(vms), true) {
		b.chunked++
		return true
	}
	clear(b.vms[len(vms):]) // let the garbage collector have what they hold
	b.vms, b.vmx, b.ents = vms, vmx, ents
	return false
}

// walkChunked reads the file in the pieces of plan. It returns false, with
// the builder in an unknown state, if the file must be read in one piece.
func (p *fileParser) walkChunked(r io.ReaderAt, plan chunkPlan) bool {
	header, err := readAt(r, 0, plan.headerEnd, nil)
	if err != nil {
		return false
	}
	root := parseYAML(&p.r, header)
	if len(p.r.Errs) > 0 || root == nil || root.Kind != yaml.MappingNode || root.Column != 1 {
		return false
	}
	vmsKey, vms := p.top(root)
	if len(p.r.Errs) > 0 || vmsKey == nil || vmsKey.Line != plan.vmsLine || vmsKey.Column != 1 ||
		!isNull(vms) || vms.Value != "" {
		return false
	}
	ok := true
	parseChunks(p.r.File, r, plan.chunks, func(n *yaml.Node, errs ErrorList) bool {
		if len(errs) > 0 || n == nil || n.Kind != yaml.MappingNode || n.Style != 0 ||
			n.Tag != "!!map" || n.Anchor != "" || n.Column != plan.indent+1 {
			ok = false
			return false
		}
		p.r.Pairs(n, "vms", p.vm)
		ok = len(p.r.Errs) == 0
		return ok
	})
	return ok
}

// readAt returns the bytes of r from start to end, in buf if it is big
// enough.
func readAt(r io.ReaderAt, start, end int64, buf []byte) ([]byte, error) {
	buf = slices.Grow(buf[:0], int(end-start))[:end-start]
	n, err := r.ReadAt(buf, start)
	if n == len(buf) {
		return buf, nil // err may be io.EOF at the end
	}
	return nil, err
}

// Parallel parsing of chunks: at most chunkWorkers pieces are parsed at
// once, and at most chunkWindow ahead of the walk, so that few trees are
// alive at a time.
const (
	chunkWorkers = 4
	chunkWindow  = 2 * chunkWorkers
)

// parseChunks parses the chunks of src, with their lines numbered as in the
// whole file, and calls walk with each tree (nil for an empty one) and the
// problems found, in order, until walk returns false. Parsing, the bulk of
// the work, runs on other goroutines, all gone when it returns.
func parseChunks(file string, src io.ReaderAt, chunks []chunkSpan, walk func(*yaml.Node, ErrorList) bool) {
	type result struct {
		n    *yaml.Node
		errs ErrorList
	}
	// The parser copies what it keeps of the text: a buffer is free for
	// the next piece once the parse is done. The buffers are the tokens
	// of the parses that may run at once.
	bufs := make(chan []byte, min(runtime.GOMAXPROCS(0), chunkWorkers))
	for range cap(bufs) {
		bufs <- nil
	}
	parse := func(c chunkSpan) result {
		buf := <-bufs
		data, err := readAt(src, c.start, c.end, buf)
		if err != nil {
			bufs <- buf
			return result{errs: ErrorList{{File: file, Msg: err.Error()}}} // the walk gives up
		}
		r := yamlutil.Reader{File: file}
		n := parseYAML(&r, data)
		bufs <- data
		if n != nil {
			shiftLines(n, c.line-1)
		}
		return result{n, r.Errs}
	}
	results := make([]chan result, len(chunks))
	var wg sync.WaitGroup
	defer wg.Wait()
	start := func(i int) {
		results[i] = make(chan result, 1)
		wg.Go(func() { results[i] <- parse(chunks[i]) })
	}
	for i := range min(chunkWindow, len(chunks)) {
		start(i)
	}
	for i := range chunks {
		r := <-results[i]
		if next := i + chunkWindow; next < len(chunks) {
			start(next)
		}
		if !walk(r.n, r.errs) {
			return
		}
	}
}

// shiftLines adds d to the line of every node of the tree n.
func shiftLines(n *yaml.Node, d int) {
	n.Line += d
	for _, c := range n.Content {
		shiftLines(c, d)
	}
}
