package main

// The commands for the people who write a domain's virtbgp metadata:
// `virtbgp metadata show|set|clear` through libvirt, and the domain XML
// part of `virtbgp check`. docs/metadata.md describes the element.

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/mapping"
)

// defaultLibvirtURI is the daemon's default libvirt.uri.
const defaultLibvirtURI = "qemu:///system"

// metadataOp returns the run function of `virtbgp metadata op`.
func metadataOp(op string) func(args []string, stdout, stderr io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int { return cmdMetadata(op, args, stdout, stderr) }
}

// cmdMetadata is `virtbgp metadata show|set|clear`. The element is in
// libvirt's metadata under the namespace mapping.MetadataNS, key
// mapping.MetadataKey: the same as virsh metadata DOMAIN --uri NS --key KEY
// --set ELEMENT --live --config.
func cmdMetadata(op string, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("metadata "+op, stdout, stderr)
	uri := fs.String("connect", defaultLibvirtURI, "libvirt connection `URI`")
	name := fs.String("domain", "", "the domain's `name` or UUID")
	live := fs.Bool("live", false, "the running domain's definition")
	config := fs.Bool("config", false, "the persistent definition, which a restart and migrate --persistent keep; "+
		"set and clear without --live or --config: every definition the domain has; show without either: libvirt's current")
	var file *string
	var routes *bool
	switch op {
	case "set":
		file = fs.String("file", "", "read the element (or a domain XML with it) from `file`; - for stdin")
	case "show":
		routes = fs.Bool("routes", false, "print the routes the element gives, not the element")
	}
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	var element []byte
	var source string
	switch {
	case *name == "":
		return usageError(fs, "--domain is required")
	case op == "show" && *live && *config:
		return usageError(fs, "--live or --config, not both")
	case op == "set" && (*file == "") == (fs.NArg() == 0):
		return usageError(fs, "give the element as the argument or with --file, one of them")
	case op == "set" && *file != "":
		source = *file
		var err error
		if element, err = readInput(*file); err != nil {
			fmt.Fprintf(stderr, "virtbgp metadata set: %v\n", err)
			return 1
		}
	case op == "set":
		source, element = "element", []byte(fs.Arg(0))
		if fs.NArg() > 1 {
			return usageError(fs, "unexpected argument %q (quote the element)", fs.Arg(1))
		}
	case fs.NArg() > 0:
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	// set checks the element before it connects: bad metadata is never
	// written.
	var m *mapping.Metadata
	if op == "set" {
		var err error
		if m, err = mapping.ParseMetadata(*name, element); err != nil {
			printMetadataErrors(stderr, source, err)
			return 1
		}
		if m == nil {
			fmt.Fprintf(stderr, "%s: no virtbgp element (<vm>, or a domain XML with <virtbgp:vm xmlns:virtbgp=%q>)\n", source, mapping.MetadataNS)
			return 1
		}
	}

	conn, err := lv.NewConnect(*uri)
	if err != nil {
		fmt.Fprintf(stderr, "virtbgp metadata %s: connect to %s: %s\n", op, *uri, libvirtMessage(err))
		return 1
	}
	defer conn.Close()
	dom, err := lookupDomain(conn, *name)
	if err != nil {
		fmt.Fprintf(stderr, "virtbgp metadata %s: domain %q: %s\n", op, *name, libvirtMessage(err))
		return 1
	}
	defer dom.Free()
	impact, where, err := metadataImpact(dom, op, *live, *config)
	if err != nil {
		fmt.Fprintf(stderr, "virtbgp metadata %s: domain %q: %s\n", op, *name, libvirtMessage(err))
		return 1
	}
	switch op {
	case "show":
		return showMetadata(dom, *name, impact, where, *routes, stdout, stderr)
	case "set":
		el := m.Element()
		if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, el, mapping.MetadataKey, mapping.MetadataNS, impact); err != nil {
			fmt.Fprintf(stderr, "virtbgp metadata set: domain %q: %s\n", *name, libvirtMessage(err))
			return 1
		}
		fmt.Fprintf(stdout, "domain %s: virtbgp metadata set in %s (%d route(s)):\n%s", *name, where, len(m.Routes), el)
		return 0
	}
	// clear: a NULL element removes it; removing an absent one is no error.
	if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, "", "", mapping.MetadataNS, impact); err != nil {
		fmt.Fprintf(stderr, "virtbgp metadata clear: domain %q: %s\n", *name, libvirtMessage(err))
		return 1
	}
	fmt.Fprintf(stdout, "domain %s: virtbgp metadata removed from %s\n", *name, where)
	return 0
}

// showMetadata prints the element that libvirt holds (or its routes), then
// checks it: exit 1 if it is absent or invalid.
func showMetadata(dom *lv.Domain, name string, impact lv.DomainModificationImpact, where string, routes bool, stdout, stderr io.Writer) int {
	el, err := dom.GetMetadata(lv.DOMAIN_METADATA_ELEMENT, mapping.MetadataNS, impact)
	var lerr lv.Error
	if errors.As(err, &lerr) && lerr.Code == lv.ERR_NO_DOMAIN_METADATA {
		fmt.Fprintf(stderr, "domain %s: no virtbgp metadata in %s\n", name, where)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "virtbgp metadata show: domain %q: %s\n", name, libvirtMessage(err))
		return 1
	}
	m, perr := mapping.ParseMetadata(name, []byte(el))
	if !routes {
		fmt.Fprintln(stdout, strings.TrimRight(el, "\n"))
	} else if m != nil {
		for _, r := range m.Routes {
			fmt.Fprintln(stdout, routeLine(r, m.Health[r.Prefix]))
		}
	}
	if perr != nil {
		printMetadataErrors(stderr, "domain "+name+" "+where, perr)
		return 1
	}
	return 0
}

// metadataImpact turns --live and --config into libvirt's flags, and says
// in words where the metadata is read or written. Without either, show
// reads libvirt's current definition; set and clear write every
// definition the domain has, so that the element survives a restart and
// migrate --persistent.
func metadataImpact(dom *lv.Domain, op string, live, config bool) (lv.DomainModificationImpact, string, error) {
	if !live && !config {
		if op == "show" {
			return lv.DOMAIN_AFFECT_CURRENT, "the current definition", nil
		}
		var err error
		if live, err = dom.IsActive(); err != nil {
			return 0, "", err
		}
		if config, err = dom.IsPersistent(); err != nil {
			return 0, "", err
		}
	}
	switch {
	case live && config:
		return lv.DOMAIN_AFFECT_LIVE | lv.DOMAIN_AFFECT_CONFIG, "the live and persistent definitions", nil
	case live:
		return lv.DOMAIN_AFFECT_LIVE, "the live definition", nil
	}
	return lv.DOMAIN_AFFECT_CONFIG, "the persistent definition", nil
}

// lookupDomain finds the domain by UUID if name is one, else by name.
func lookupDomain(conn *lv.Connect, name string) (*lv.Domain, error) {
	if isUUID(name) {
		if d, err := conn.LookupDomainByUUIDString(name); err == nil {
			return d, nil
		}
	}
	return conn.LookupDomainByName(name)
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// libvirtMessage is libvirt's own message of err, without the error
// codes of lv.Error's text.
func libvirtMessage(err error) string {
	var lerr lv.Error
	if errors.As(err, &lerr) && lerr.Message != "" {
		return lerr.Message
	}
	return err.Error()
}

// readInput reads a file, or stdin for "-".
func readInput(path string) ([]byte, error) {
	if path == "-" {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return data, nil
}

// printMetadataErrors writes each problem of err as "source:line:column:
// problem", the form of compilers and editors.
func printMetadataErrors(w io.Writer, source string, err error) {
	list := mapping.MetadataErrors(err)
	if len(list) == 0 {
		fmt.Fprintf(w, "%s: %v\n", source, err)
		return
	}
	for _, e := range list {
		if e.Line > 0 {
			fmt.Fprintf(w, "%s:%d:%d: %s: %s\n", source, e.Line, e.Column, e.Source, e.Msg)
		} else {
			fmt.Fprintf(w, "%s: %s: %s\n", source, e.Source, e.Msg)
		}
	}
	fmt.Fprintf(w, "%s: %d problem(s)\n", source, len(list))
}

// domainXMLCheck is what `virtbgp check --domain-xml` checks a file with.
type domainXMLCheck struct {
	files     []string
	allow     *mapping.Allow // nil: no trust check
	novaTypes []string
}

// domainXMLFlags adds check's flags for domain XML files to fs.
func domainXMLFlags(fs *flag.FlagSet) *domainXMLCheck {
	c := &domainXMLCheck{novaTypes: []string{mapping.NovaFixed}}
	fs.Func("domain-xml", "check the virtbgp and Nova metadata of this domain XML `file` (virsh dumpxml), or of a bare element; - for stdin; repeatable", func(s string) error {
		c.files = append(c.files, s)
		return nil
	})
	fs.Func("allowed-prefixes", "with --domain-xml: refuse routes outside these comma-separated `prefixes` (mapping.Allow)", func(s string) error {
		ps, err := parsePrefixList(s)
		if err != nil {
			return err
		}
		c.allowed().Prefixes = ps
		return nil
	})
	fs.Func("allowed-next-hops", "with --allowed-prefixes: explicit next hops may lie in these comma-separated `prefixes`", func(s string) error {
		ps, err := parsePrefixList(s)
		if err != nil {
			return err
		}
		c.allowed().NextHops = ps
		return nil
	})
	fs.Func("min-prefix-length", "with --allowed-prefixes: the shortest IPv4 and IPv6 prefix a source may claim, as `v4,v6` (default 32,128: host routes)", func(s string) error {
		var v4, v6 int
		if _, err := fmt.Sscanf(s, "%d,%d", &v4, &v6); err != nil {
			return fmt.Errorf("want two lengths, IPv4 and IPv6, like 28,64: %w", err)
		}
		c.allowed().MinBits4, c.allowed().MinBits6 = v4, v6
		return nil
	})
	fs.Func("nova-ip-types", "with --domain-xml: the Nova IP `types` to announce, comma-separated: fixed, floating (default fixed)", func(s string) error {
		c.novaTypes = strings.Split(s, ",")
		return (&mapping.NovaOptions{Types: c.novaTypes}).Validate()
	})
	return c
}

func (c *domainXMLCheck) allowed() *mapping.Allow {
	if c.allow == nil {
		c.allow = &mapping.Allow{}
	}
	return c.allow
}

func parsePrefixList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// run checks every file; it returns false if anything is wrong.
func (c *domainXMLCheck) run(stdout, stderr io.Writer) bool {
	if c.allow != nil {
		if err := c.allow.Validate(); err != nil {
			for _, e := range err.(mapping.AllowErrorList) {
				fmt.Fprintf(stderr, "allowed: %v\n", e)
			}
			return false
		}
		if len(c.allow.Prefixes) == 0 {
			fmt.Fprintln(stderr, "--allowed-next-hops and --min-prefix-length need --allowed-prefixes")
			return false
		}
	}
	ok := true
	for _, f := range c.files {
		ok = c.file(f, stdout, stderr) && ok
	}
	return ok
}

// file checks one domain XML file, or a bare element of either kind.
func (c *domainXMLCheck) file(path string, stdout, stderr io.Writer) bool {
	data, err := readInput(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return false
	}
	// A bare element is one kind's, and a problem for the other's parser.
	root := rootElement(data)
	virtbgp, nova := root != "instance", root == "instance" || root == "domain"
	var problems mapping.MetadataErrorList
	var m *mapping.Metadata
	var inst *mapping.NovaInstance
	if virtbgp {
		m, err = mapping.ParseMetadata(path, data)
		problems = append(problems, mapping.MetadataErrors(err)...)
	}
	if nova {
		inst, err = mapping.ParseNova(path, data)
		for _, e := range mapping.MetadataErrors(err) {
			// A syntax error of a domain XML is both parsers'.
			if !slices.ContainsFunc(problems, func(o mapping.MetadataError) bool {
				return o.Line == e.Line && o.Column == e.Column && o.Msg == e.Msg
			}) {
				problems = append(problems, e)
			}
		}
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b mapping.MetadataError) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		printMetadataErrors(stderr, path, problems)
		return false
	}
	if m == nil && inst == nil {
		fmt.Fprintf(stderr, "%s: no virtbgp metadata (namespace %s) and no Nova metadata (namespace %s)\n", path, mapping.MetadataNS, mapping.NovaNS)
		return false
	}
	ok := true
	if m != nil {
		ok = c.routes(path, "virtbgp metadata", "", m.Routes, m.Health, nil, stdout, stderr)
	}
	if inst != nil {
		routes, unannounced, err := inst.Routes(&mapping.NovaOptions{Types: c.novaTypes})
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			return false
		}
		detail := fmt.Sprintf(" (%d port(s); IP types %s)", len(inst.Ports), strings.Join(c.novaTypes, ", "))
		ok = c.routes(path, "nova metadata", detail, routes, nil, unannounced, stdout, stderr) && ok
	}
	return ok
}

// rootElement returns the local name of the document's root element, ""
// if it has none that can be read.
func rootElement(data []byte) string {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

// routes prints the routes of one source of a file with the names of
// their health checks, those that cannot be announced (notes: Nova lists
// link-local addresses), and, with --allowed-prefixes, those the
// operator's pools refuse, or whose checks the default trust rules of
// mapping.metadata.health refuse (problems).
func (c *domainXMLCheck) routes(path, what, detail string, routes []mapping.Route, health map[netip.Prefix]*mapping.Health,
	unannounced []mapping.Refusal, stdout, stderr io.Writer) bool {
	var refused []mapping.Refusal
	if c.allow != nil {
		routes, refused = c.allow.Filter(path, routes)
		var unhealthy []mapping.Refusal
		routes, unhealthy = (&mapping.HealthTrust{}).Filter(path, routes, health)
		refused = append(refused, unhealthy...)
	}
	if len(refused) == 0 {
		fmt.Fprintf(stdout, "%s: %s%s: ok (%d route(s))\n", path, what, detail, len(routes))
	} else {
		fmt.Fprintf(stdout, "%s: %s%s: %d route(s) allowed, %d refused\n", path, what, detail, len(routes), len(refused))
	}
	for _, r := range routes {
		fmt.Fprintf(stdout, "  %s\n", routeLine(r, health[r.Prefix]))
	}
	for _, r := range unannounced {
		fmt.Fprintf(stdout, "  not announced: %s: %s\n", r.Prefix, r.Reason)
	}
	for _, r := range refused {
		fmt.Fprintf(stderr, "%s: %s: %s refused: %s\n", path, what, r.Prefix, r.Reason)
	}
	return len(refused) == 0
}

// routeLine is a route as the metadata commands print it, with the names
// of its health checks and what their failure does.
func routeLine(r mapping.Route, h *mapping.Health) string {
	if h == nil {
		return r.String()
	}
	names := make([]string, len(h.Checks))
	for i, c := range h.Checks {
		names[i] = c.Name
	}
	return fmt.Sprintf("%s checks [%s] on-failure %s", r, strings.Join(names, " "), h.OnFailure)
}
