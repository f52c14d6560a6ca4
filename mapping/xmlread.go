package mapping

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// MetadataError is one problem in the XML metadata of a domain: virtbgp's
// element (ParseMetadata) or Nova's (ParseNova). Its text is
//
//	domain "web-01": virtbgp metadata:3:5: ip[2]: prefix: invalid IP address "192.0.2.300"
//
// Line and Column are a position in the XML that the parser was given,
// from 1, the column in bytes; both are 0 when no place applies.
type MetadataError struct {
	// Domain is the domain's name as the caller gave it to the parser.
	Domain string
	// Source is "virtbgp metadata" or "nova metadata".
	Source       string
	Line, Column int
	Msg          string
}

func (e MetadataError) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("domain %s: %s: %s", strconv.Quote(e.Domain), e.Source, e.Msg)
	}
	return fmt.Sprintf("domain %s: %s:%d:%d: %s", strconv.Quote(e.Domain), e.Source, e.Line, e.Column, e.Msg)
}

// MetadataErrorList is every problem found in one document, sorted by
// position. The parsers return one, as an error, only when it is not
// empty. Its text is one problem per line.
type MetadataErrorList []MetadataError

func (l MetadataErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// MetadataErrors returns the individual problems inside err (a
// MetadataErrorList, a MetadataError, or an error wrapping either), or nil.
func MetadataErrors(err error) MetadataErrorList {
	var l MetadataErrorList
	if errors.As(err, &l) {
		return l
	}
	var e MetadataError
	if errors.As(err, &e) {
		return MetadataErrorList{e}
	}
	return nil
}

// The sources, as MetadataError and messages name them.
const (
	sourceVirtbgp = "virtbgp metadata"
	sourceNova    = "nova metadata"
)

// pos is where a token starts: its line and column, and its offset in the
// input.
type pos struct {
	line, col int
	off       int
}

// xmlReader is what the two metadata parsers share: an encoding/xml
// Decoder over the document, the position of the token last read, and the
// problems found.
type xmlReader struct {
	data   []byte
	d      *xml.Decoder
	domain string
	source string
	errs   MetadataErrorList
	// at is where the token last read starts, end the offset after it.
	at  pos
	end int
	// line and lineStart are the line at offset counted, and the offset at
	// which that line starts: the count of lines moves forward with the
	// tokens, once over the input. (Decoder.InputPos can be a column off
	// after the decoder has put back a newline.)
	line, lineStart, counted int
	// failed is set at the end of the input and after a syntax error
	// (broken): nothing more is read.
	failed, broken bool
	// viaDomain is set when the document is a whole domain XML.
	viaDomain bool
}

func newXMLReader(source, domain string, data []byte) *xmlReader {
	// A bytes.Reader is an io.ByteReader: the decoder reads it without a
	// buffer of its own, so its offsets are offsets in data.
	d := xml.NewDecoder(bytes.NewReader(data))
	return &xmlReader{data: data, d: d, domain: domain, source: source, line: 1}
}

// posAt returns the position of offset off, which must not be before any
// offset asked for earlier.
func (r *xmlReader) posAt(off int) pos {
	off = min(max(off, r.counted), len(r.data))
	seg := r.data[r.counted:off]
	if i := bytes.LastIndexByte(seg, '\n'); i >= 0 {
		r.line += bytes.Count(seg, []byte{'\n'})
		r.lineStart = r.counted + i + 1
	}
	r.counted = off
	return pos{line: r.line, col: off - r.lineStart + 1, off: off}
}

// next reads the next token, recording where it starts. At the end of the
// input, or after a syntax error (which it records), it returns nil.
func (r *xmlReader) next() xml.Token {
	if r.failed {
		return nil
	}
	r.at = r.posAt(int(r.d.InputOffset()))
	tok, err := r.d.Token()
	r.end = int(r.d.InputOffset())
	if err != nil {
		r.failed = true
		if err == io.EOF {
			return nil
		}
		r.broken = true
		at := r.posAt(r.end)
		msg := err.Error()
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			msg = "XML syntax error: " + se.Msg
		}
		r.errs = append(r.errs, MetadataError{Domain: r.domain, Source: r.source, Line: at.line, Column: at.col, Msg: oneLine(msg)})
		return nil
	}
	return tok
}

// errorAt records a problem at p.
func (r *xmlReader) errorAt(p pos, format string, args ...any) {
	r.errs = append(r.errs, MetadataError{Domain: r.domain, Source: r.source, Line: p.line, Column: p.col, Msg: oneLine(fmt.Sprintf(format, args...))})
}

// oneLine makes sure that a message is one line: the messages quote what
// they take from the input, and this is the net under them.
func oneLine(msg string) string {
	if printable(msg) == msg {
		return msg
	}
	q := strconv.Quote(msg)
	return q[1 : len(q)-1]
}

// errorTop records a problem of the whole document, at no place.
func (r *xmlReader) errorTop(format string, args ...any) {
	r.errs = append(r.errs, MetadataError{Domain: r.domain, Source: r.source, Msg: oneLine(fmt.Sprintf(format, args...))})
}

// result returns the problems found, sorted by position, as an error; nil
// if there are none.
func (r *xmlReader) result() error {
	if len(r.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(r.errs, func(a, b MetadataError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return r.errs
}

// attrPos returns where the attribute named local starts in the start tag
// that begins at tag and ends at offset end: the tag's own position if it
// cannot be told. Only messages need it.
func (r *xmlReader) attrPos(tag pos, end int, local string) pos {
	raw := r.data[tag.off:min(end, len(r.data))]
	for i := 0; ; {
		j := bytes.Index(raw[i:], []byte(local))
		if j < 0 {
			return tag
		}
		j += i
		i = j + len(local)
		// The name must stand alone (after white space or a prefix's
		// colon) and be followed by "=".
		if j == 0 || !(isXMLSpace(raw[j-1]) || raw[j-1] == ':') {
			continue
		}
		k := i
		for k < len(raw) && isXMLSpace(raw[k]) {
			k++
		}
		if k == len(raw) || raw[k] != '=' {
			continue
		}
		for j > 0 && raw[j-1] != ' ' && raw[j-1] != '\t' && raw[j-1] != '\n' && raw[j-1] != '\r' {
			j-- // the start of a prefixed name
		}
		p := tag
		p.off += j
		if nl := bytes.LastIndexByte(raw[:j], '\n'); nl >= 0 {
			p.line += bytes.Count(raw[:j], []byte{'\n'})
			p.col = j - nl
		} else {
			p.col += j
		}
		return p
	}
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isSpace reports whether text is only XML white space.
func isSpace(text []byte) bool {
	for _, c := range text {
		if !isXMLSpace(c) {
			return false
		}
	}
	return true
}

// isNSDecl reports whether the attribute declares a namespace.
func isNSDecl(a xml.Attr) bool {
	return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
}

// qname renders a name as a message shows it: the local name, after the
// namespace in braces if it has one, each quoted if it has a control
// character (a namespace is any string).
func qname(n xml.Name) string {
	if n.Space == "" {
		return printable(n.Local)
	}
	return "{" + printable(n.Space) + "}" + printable(n.Local)
}

// clip shortens a value for a message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// find reads the document up to the element named local in namespace ns,
// and returns its start tag and where it starts. The document is that
// element itself, in ns or in no namespace (virDomainGetMetadata returns
// it without one), or a whole domain XML, <domain>, with the element a
// child of its <metadata>. In a domain XML without the element it returns
// false with no problem: absent metadata is not an error. A document that
// is neither, or broken, is a problem. what names the element in messages.
//
// With the element found, the caller reads it up to its end tag, then calls
// finish, which reads the rest of the document.
func (r *xmlReader) find(ns, local, what string) (xml.StartElement, pos, bool) {
	root, at, ok := r.root()
	if !ok {
		return root, at, false
	}
	n := root.Name
	switch {
	case n.Local == local && (n.Space == ns || n.Space == ""):
		return root, at, true
	case n.Local == "domain" && n.Space == "":
		r.viaDomain = true
		if se, at, ok := r.inDomain(ns, local); ok {
			return se, at, true
		}
		r.epilog()
		return root, at, false
	case n.Local == local:
		r.errorAt(at, "<%s> is in the namespace %q: want %q, or none (as virsh metadata prints it)", local, n.Space, ns)
	default:
		r.errorAt(at, "the root element is <%s>: want %s (<%s> in the namespace %s, or in none) or a whole domain XML (<domain>)", qname(n), what, local, ns)
	}
	r.skip()
	r.epilog()
	return root, at, false
}

// root reads the prolog and returns the root element's start tag. The
// prolog may hold an XML declaration, comments and white space; a DOCTYPE
// (or any directive) or text is a problem.
func (r *xmlReader) root() (xml.StartElement, pos, bool) {
	for {
		switch t := r.next().(type) {
		case nil:
			if !r.broken {
				r.errorTop("no XML element in the document")
			}
			return xml.StartElement{}, pos{}, false
		case xml.StartElement:
			return t, r.at, true
		case xml.CharData:
			if !isSpace(t) {
				r.errorAt(r.at, "text %q before the root element", clip(strings.TrimSpace(string(t))))
			}
		case xml.Directive:
			r.errorAt(r.at, "a directive (<!DOCTYPE ...>) is not allowed")
		case xml.ProcInst:
			if t.Target != "xml" {
				r.errorAt(r.at, "a processing instruction (<?%s ...?>) is not allowed", printable(clip(t.Target)))
			}
		}
	}
}

// inDomain reads the children of <domain> up to the element in
// <metadata>; false at the end of <domain>.
func (r *xmlReader) inDomain(ns, local string) (xml.StartElement, pos, bool) {
	for {
		switch t := r.next().(type) {
		case nil, xml.EndElement:
			return xml.StartElement{}, pos{}, false
		case xml.StartElement:
			if t.Name.Local != "metadata" || t.Name.Space != "" {
				r.skip()
				continue
			}
			if se, at, ok := r.inMetadata(ns, local); ok {
				return se, at, true
			}
		}
	}
}

// inMetadata reads the children of <metadata> up to the element; false at
// the end of <metadata>.
func (r *xmlReader) inMetadata(ns, local string) (xml.StartElement, pos, bool) {
	for {
		switch t := r.next().(type) {
		case nil, xml.EndElement:
			return xml.StartElement{}, pos{}, false
		case xml.StartElement:
			if t.Name.Local == local && t.Name.Space == ns {
				return t, r.at, true
			}
			r.skip()
		}
	}
}

// finish reads the rest of the document after the element that find found
// (at at), which the caller has read up to its end tag: in a domain XML,
// the rest of <metadata>, where a second element of the namespace is a
// problem (libvirt keeps one), and of <domain>; then the epilog.
func (r *xmlReader) finish(found xml.StartElement, at pos) {
	if r.viaDomain {
		for more := true; more; {
			switch t := r.next().(type) {
			case nil, xml.EndElement:
				more = false
			case xml.StartElement:
				if t.Name == found.Name {
					r.errorAt(r.at, "a second <%s> in the namespace %s (the first is at %d:%d): libvirt keeps one",
						found.Name.Local, found.Name.Space, at.line, at.col)
				}
				r.skip()
			}
		}
		r.skip() // the rest of <domain>
	}
	r.epilog()
}

// skip reads up to the end of the element whose start tag was just read.
func (r *xmlReader) skip() {
	for depth := 1; depth > 0; {
		switch r.next().(type) {
		case nil:
			return
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

// epilog reads what follows the root element: only comments, processing
// instructions and white space may.
func (r *xmlReader) epilog() {
	for {
		switch t := r.next().(type) {
		case nil:
			return
		case xml.StartElement:
			r.errorAt(r.at, "a second root element <%s>: want one", qname(t.Name))
			r.skip()
		case xml.CharData:
			if !isSpace(t) {
				r.errorAt(r.at, "text %q after the root element", clip(strings.TrimSpace(string(t))))
			}
		case xml.Directive:
			r.errorAt(r.at, "a directive (<!DOCTYPE ...>) is not allowed")
		}
	}
}
