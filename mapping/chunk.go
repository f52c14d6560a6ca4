package mapping

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"

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
// where an entry starts, each piece parsed on its own and walked and
// dropped before the next. Only one piece's tree is alive at a time.
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
	headerEnd int // data[:headerEnd] ends with the "vms:" line
	vmsLine   int // the line number of "vms:"
	indent    int // the indentation of the entries under vms
	entries   int // about how many entries there are (for sizing)
	items     int // about how many list items there are (for sizing)
	chunks    []chunkSpan
}

// chunkSpan is one piece of the body: data[start:end], whose first line is
// line number line.
type chunkSpan struct{ start, end, line int }

// planChunks cuts data into pieces of at least size bytes, if the file has
// the shape that allows it.
func planChunks(data []byte, size int) (chunkPlan, bool) {
	var plan chunkPlan
	// Line breaks other than \n, and byte order marks, would put lines
	// elsewhere than this cutting counts them.
	for _, odd := range [...]string{"\r", "\u0085", "\u2028", "\u2029", "\ufeff"} {
		if bytes.Contains(data, []byte(odd)) {
			return plan, false
		}
	}
	// The last line with content in column 0 must be "vms:", and the rest
	// of the file its value: lines that are blank, comments, or indented.
	lastStart, lastEnd, lastLine := -1, 0, 0
	line := 0
	for off := 0; off < len(data); {
		line++
		end := lineEnd(data, off)
		if end > off && data[off] != ' ' && data[off] != '#' {
			lastStart, lastEnd, lastLine = off, end, line
		}
		off = end + 1
	}
	if lastStart < 0 || !isVMsLine(data[lastStart:lastEnd]) || lastEnd+1 >= len(data) {
		return plan, false
	}
	plan.headerEnd, plan.vmsLine = lastEnd+1, lastLine
	if data[0] == '%' || bytes.Contains(data[:plan.headerEnd], []byte("\n%")) {
		return plan, false // directives: the pieces would not have them
	}
	plan.indent = -1
	start, startLine := plan.headerEnd, lastLine+1
	line = lastLine
	for off := plan.headerEnd; off < len(data); {
		line++
		end := lineEnd(data, off)
		n := 0
		for off+n < end && data[off+n] == ' ' {
			n++
		}
		switch {
		case off+n == end || data[off+n] == '#':
			// blank or comment
		case data[off+n] == '\t':
			return plan, false
		case plan.indent < 0:
			plan.indent = n
			plan.entries++
		case n == plan.indent && keyStart(data[off+n]):
			plan.entries++
			if off-start >= size {
				plan.chunks = append(plan.chunks, chunkSpan{start, off, startLine})
				start, startLine = off, line
			}
		case n > plan.indent && data[off+n] == '-' && (off+n+1 == end || data[off+n+1] == ' '):
			plan.items++ // most likely an IP of a block list of ips
		}
		off = end + 1
	}
	if plan.indent < 0 {
		return plan, false
	}
	plan.chunks = append(plan.chunks, chunkSpan{start, len(data), startLine})
	return plan, true
}

// lineEnd returns the offset of the \n that ends the line at off, or
// len(data).
func lineEnd(data []byte, off int) int {
	if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
		return off + i
	}
	return len(data)
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

// walkChunked reads the file in the pieces of plan. It returns false, with
// the builder in an unknown state, if the file must be read in one piece.
func (p *fileParser) walkChunked(data []byte, plan chunkPlan) bool {
	root := parseYAML(&p.r, data[:plan.headerEnd])
	if len(p.r.Errs) > 0 || root == nil || root.Kind != yaml.MappingNode || root.Column != 1 {
		return false
	}
	vmsKey, vms := p.top(root)
	if len(p.r.Errs) > 0 || vmsKey == nil || vmsKey.Line != plan.vmsLine || vmsKey.Column != 1 ||
		!isNull(vms) || vms.Value != "" {
		return false
	}
	ok, i := true, 0
	parseChunks(p.r.File, data, plan.chunks, func(n *yaml.Node, errs ErrorList) bool {
		if len(errs) > 0 || n == nil || n.Kind != yaml.MappingNode || n.Style != 0 ||
			n.Tag != "!!map" || n.Anchor != "" || n.Column != plan.indent+1 {
			ok = false
			return false
		}
		p.r.Pairs(n, "vms", p.vm)
		ok = len(p.r.Errs) == 0
		// The chunks up to this one are parsed: their text is not needed
		// any more, unless the file must be read again in one piece.
		p.b.dropped(plan.chunks[i].end)
		i++
		return ok
	})
	return ok
}

// Parallel parsing of chunks: at most chunkWorkers goroutines parse, at most
// chunkWindow pieces ahead of the walk, so that few trees are alive at once.
const (
	chunkWorkers = 4
	chunkWindow  = 2 * chunkWorkers
)

// parseChunks parses the chunks of data, with their lines numbered as in the
// whole file, and calls walk with each tree (nil for an empty one) and the
// problems found, in order, until walk returns false. Parsing, the bulk of
// the work, runs on up to chunkWorkers goroutines, all gone when it returns.
func parseChunks(file string, data []byte, chunks []chunkSpan, walk func(*yaml.Node, ErrorList) bool) {
	parse := func(c chunkSpan) (*yaml.Node, ErrorList) {
		r := yamlutil.Reader{File: file}
		n := parseYAML(&r, data[c.start:c.end])
		if n != nil {
			shiftLines(n, c.line-1)
		}
		return n, r.Errs
	}
	workers := min(runtime.GOMAXPROCS(0), chunkWorkers, len(chunks)-1)
	if workers < 1 {
		for _, c := range chunks {
			if !walk(parse(c)) {
				return
			}
		}
		return
	}
	type result struct {
		n    *yaml.Node
		errs ErrorList
	}
	results := make([]chan result, len(chunks))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	var next atomic.Int64                      // the next chunk to parse
	window := make(chan struct{}, chunkWindow) // a slot per chunk parsed and not walked
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case window <- struct{}{}:
				}
				i := int(next.Add(1) - 1)
				if i >= len(chunks) {
					return
				}
				n, errs := parse(chunks[i])
				results[i] <- result{n, errs}
			}
		})
	}
	defer wg.Wait()
	defer close(done)
	for i := range chunks {
		r := <-results[i]
		<-window
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
