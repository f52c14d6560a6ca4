package mapping

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/internal/yamlutil"
)

// Health says how the routes of an entry, or of one of its IPs, follow the
// health of the VM: the checks that must pass, and what a failure does.
// A Health is shared by the routes it applies to and never modified.
type Health struct {
	// Checks are the checks; every one must be healthy for the routes to
	// be announced as the mapping says. Their names are unique.
	Checks []Check
	// OnFailure is what a failing (or starting, with InitialUp false)
	// check does to the routes.
	OnFailure FailAction
	// Depreference is the change made to the routes with
	// FailDepreference: communities added, MED replaced, prepends added.
	Depreference Depreference
	// InitialUp makes a check that has not yet passed or failed rise
	// times count as healthy ("initial: up"); the default is down: a VM
	// whose checks have not passed after boot is "starting" and not
	// announced (or depreferenced).
	InitialUp bool
	// File and Line are where the health key is.
	File string
	Line int
}

// FailAction is what a failing check does to the routes it guards.
type FailAction uint8

// The actions on failure.
const (
	// FailWithdraw withdraws the routes (the default).
	FailWithdraw FailAction = iota
	// FailDepreference keeps the routes with the Depreference applied, so
	// that another anycast member or a backup wins.
	FailDepreference
)

func (a FailAction) String() string {
	if a == FailDepreference {
		return "depreference"
	}
	return "withdraw"
}

// Depreference is how a failing route is made less preferred.
type Depreference struct {
	Communities []uint32 // added, normalized
	MED         *uint32  // replaces the route's MED when set
	Prepend     uint8    // extra local-AS prepends
}

// Apply returns r with the depreference applied (a copy; r is not changed).
func (d Depreference) Apply(r Route) Route {
	r = r.Clone()
	r.Communities = append(r.Communities, d.Communities...)
	r.Normalize()
	if d.MED != nil {
		v := *d.MED
		r.MED = &v
	}
	r.ASPathPrepend = uint8(min(int(r.ASPathPrepend)+int(d.Prepend), 255))
	return r
}

// CheckKind is the kind of a health check.
type CheckKind string

// The check kinds.
const (
	// CheckAgent: the QEMU guest agent answers guest-ping through libvirt.
	CheckAgent CheckKind = "agent"
	// CheckTCP: a TCP connect to Address succeeds.
	CheckTCP CheckKind = "tcp"
	// CheckHTTP: a GET of URL returns Status (and Body, if set, is in the
	// response body).
	CheckHTTP CheckKind = "http"
	// CheckExec: Command, run on the hypervisor, exits 0.
	CheckExec CheckKind = "exec"
)

// Check is one health check. In Address and URL, "{ip}" stands for the
// address of the IP the check guards (in brackets for IPv6 where a port
// follows), so that a check given for an entry checks each of its IPs.
type Check struct {
	// Name is unique among the checks of one Health; it defaults to the
	// kind.
	Name string
	Kind CheckKind
	// Address is host:port, for CheckTCP.
	Address string
	// URL, Status and Body are for CheckHTTP; Status defaults to 200.
	URL    string
	Status int
	Body   string
	// Command is the program and its arguments, for CheckExec; the
	// program's path is absolute.
	Command []string
	// Interval is the time between two runs, Timeout the most one run may
	// take (at most Interval).
	Interval, Timeout time.Duration
	// Rise is how many passes in a row make a failing check healthy, Fall
	// how many failures in a row make a healthy check fail.
	Rise, Fall int
	// Maintenance is a file whose existence puts the check in
	// maintenance: failing, whatever the probe says, until it is removed.
	Maintenance string
	// Line is where the check is in its file.
	Line int
}

// Defaults of a check (ExaBGP healthcheck's vocabulary, shorter times).
const (
	DefaultCheckInterval = 5 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
	DefaultCheckRise     = 3
	DefaultCheckFall     = 3
	minCheckInterval     = 100 * time.Millisecond
	maxCheckInterval     = time.Hour
	maxRiseFall          = 100
)

// Key names the check's probe for a target, for sharing one probe between
// the IPs of a VM that it checks the same way: the kind, the target with
// {ip} replaced, the command and the timing.
func (c *Check) Key(ip netip.Addr) string {
	return fmt.Sprintf("%s|%s|%s|%d|%q|%q|%s|%s|%d|%d|%s", c.Name, c.Kind, c.Target(ip), c.Status, c.Body,
		c.Command, c.Interval, c.Timeout, c.Rise, c.Fall, c.Maintenance)
}

// Target is what the check probes for the IP ip: the address (tcp) or URL
// (http) with {ip} replaced; the command for exec; "" for agent.
func (c *Check) Target(ip netip.Addr) string {
	switch c.Kind {
	case CheckTCP:
		return strings.ReplaceAll(c.Address, "{ip}", hostForm(ip))
	case CheckHTTP:
		return strings.ReplaceAll(c.URL, "{ip}", hostForm(ip))
	case CheckExec:
		return strings.Join(c.Command, " ")
	}
	return ""
}

// Shown is what logs and status show of the check's target for the IP
// ip: Target without what may hold a secret: an http URL without its
// query, an exec command without its arguments.
func (c *Check) Shown(ip netip.Addr) string {
	switch c.Kind {
	case CheckHTTP:
		t := c.Target(ip)
		if i := strings.IndexAny(t, "?#"); i >= 0 {
			t = t[:i]
		}
		return t
	case CheckExec:
		if len(c.Command) > 0 {
			return c.Command[0]
		}
	}
	return c.Target(ip)
}

// hostForm is ip as the host part of host:port or of a URL.
func hostForm(ip netip.Addr) string {
	if ip.Is6() {
		return "[" + ip.String() + "]"
	}
	return ip.String()
}

// The keys of a health block and of a check.
const (
	keyHealth   = "health"
	keyAnycast  = "anycast"
	healthWhat  = "health"
	exampleIP   = "192.0.2.1"
	placeholder = "{ip}"
)

// health reads the value of a health key at the current level.
func (p *fileParser) health(k, v *yaml.Node) {
	h := &Health{File: p.r.File, Line: k.Line}
	what := func() string {
		if p.name != "" {
			return p.name // the key's full name
		}
		return p.what() + ": " + healthWhat
	}
	var checks, depref *yaml.Node
	var dprefLine int
	p.r.MapFunc(v, what,
		yamlutil.Field{Key: "checks", Do: func(_, v *yaml.Node) { checks = v }},
		yamlutil.Field{Key: "on-failure", Do: func(_, v *yaml.Node) {
			s, ok := p.r.String(v, what()+": on-failure")
			switch {
			case !ok:
			case s == "withdraw":
				h.OnFailure = FailWithdraw
			case s == "depreference":
				h.OnFailure = FailDepreference
			default:
				p.r.Errorf(v, "%s: on-failure: want withdraw or depreference, got %s", what(), yamlutil.Describe(v))
			}
		}},
		yamlutil.Field{Key: "initial", Do: func(_, v *yaml.Node) {
			s, ok := p.r.String(v, what()+": initial")
			switch {
			case !ok:
			case s == "up" || s == "down":
				h.InitialUp = s == "up"
			default:
				p.r.Errorf(v, "%s: initial: want up or down, got %s", what(), yamlutil.Describe(v))
			}
		}},
		yamlutil.Field{Key: "depreference", Do: func(k, v *yaml.Node) { depref, dprefLine = v, k.Line }},
	)
	if v.Kind != yaml.MappingNode {
		return
	}
	if depref != nil {
		p.depreference(h, depref, what)
	}
	switch {
	case h.OnFailure == FailDepreference && depref == nil:
		p.r.Errorf(v, "%s: on-failure: depreference needs a \"depreference\" block (communities, med, as-path-prepend)", what())
	case h.OnFailure == FailWithdraw && depref != nil:
		p.errorAt(dprefLine, "%s: depreference: only with on-failure: depreference", what())
	}
	if checks == nil {
		p.r.Errorf(v, "%s: missing \"checks\" (at least one)", what())
		return
	}
	items := p.r.Seq(checks, what()+": checks")
	if checks.Kind == yaml.SequenceNode && len(items) == 0 {
		p.r.Errorf(checks, "%s: checks: want at least one check", what())
	}
	seen := map[string]int{}
	for i, it := range items {
		c, ok := p.check(it, func() string { return what() + ": checks[" + strconv.Itoa(i) + "]" })
		if !ok {
			continue
		}
		if first, dup := seen[c.Name]; dup {
			p.r.Errorf(it, "%s: checks[%d]: check %q is already defined at line %d (give each check of a kind its own name)", what(), i, c.Name, first)
			continue
		}
		seen[c.Name] = c.Line
		h.Checks = append(h.Checks, c)
	}
	p.setHealth(h)
}

// depreference reads the depreference block of h.
func (p *fileParser) depreference(h *Health, n *yaml.Node, what func() string) {
	dw := func() string { return what() + ": depreference" }
	set := false
	p.r.MapFunc(n, dw,
		yamlutil.Field{Key: keyCommunities, Do: func(_, v *yaml.Node) {
			for _, it := range p.r.Seq(v, dw()+": communities") {
				s, ok := p.r.String(it, dw()+": communities")
				if !ok {
					continue
				}
				c, ok := parseCommunity(s)
				if !ok {
					p.r.Errorf(it, "%s: communities: invalid community %s (want %s)", dw(), yamlutil.Describe(it), wantCommunity)
					continue
				}
				h.Depreference.Communities = append(h.Depreference.Communities, c)
				set = true
			}
			h.Depreference.Communities = normComms(h.Depreference.Communities)
		}},
		yamlutil.Field{Key: keyMED, Do: func(_, v *yaml.Node) {
			if m, ok := p.r.Uint(v, dw()+": med", 0, math.MaxUint32); ok {
				h.Depreference.MED, set = p.b.number(uint32(m)), true
			}
		}},
		yamlutil.Field{Key: keyPrepend, Do: func(_, v *yaml.Node) {
			if m, ok := p.r.Uint(v, dw()+": "+keyPrepend, 1, maxPrepend); ok {
				h.Depreference.Prepend, set = uint8(m), true
			}
		}},
	)
	if n.Kind == yaml.MappingNode && !set && len(n.Content) == 0 {
		p.r.Errorf(n, "%s: want at least one of communities, med, as-path-prepend", dw())
	}
}

// check reads one item of checks.
func (p *fileParser) check(n *yaml.Node, what func() string) (Check, bool) {
	in := checkIn[*yaml.Node]{whole: n, line: n.Line}
	str := func(f *field[*yaml.Node, string], key string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			f.at, f.set = v, true
			f.v, f.ok = p.r.String(v, what()+": "+key)
		}
	}
	count := func(f *field[*yaml.Node, int], key string, lo, hi uint64) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			f.at, f.set = v, true
			var m uint64
			m, f.ok = p.r.Uint(v, what()+": "+key, lo, hi)
			f.v = int(m)
		}
	}
	p.r.MapFunc(n, what,
		yamlutil.Field{Key: "type", Do: str(&in.kind, "type")},
		yamlutil.Field{Key: "name", Do: str(&in.name, "name")},
		yamlutil.Field{Key: "address", Do: str(&in.address, "address")},
		yamlutil.Field{Key: "url", Do: str(&in.url, "url")},
		yamlutil.Field{Key: "status", Do: count(&in.status, "status", minStatus, maxStatus)},
		yamlutil.Field{Key: "body", Do: str(&in.body, "body")},
		yamlutil.Field{Key: "command", Do: func(_, v *yaml.Node) {
			in.command.at, in.command.set, in.command.ok = v, true, true
			for _, it := range p.r.Seq(v, what()+": command") {
				if s, ok := p.r.String(it, what()+": command"); ok {
					in.command.v = append(in.command.v, s)
				} else {
					in.command.ok = false
				}
			}
		}},
		yamlutil.Field{Key: "interval", Do: str(&in.interval, "interval")},
		yamlutil.Field{Key: "timeout", Do: str(&in.timeout, "timeout")},
		yamlutil.Field{Key: "rise", Do: count(&in.rise, "rise", 1, maxRiseFall)},
		yamlutil.Field{Key: "fall", Do: count(&in.fall, "fall", 1, maxRiseFall)},
		yamlutil.Field{Key: "maintenance", Do: str(&in.maintenance, "maintenance")},
	)
	if n.Kind != yaml.MappingNode {
		return Check{}, false
	}
	return in.build(what(), func(v *yaml.Node, format string, args ...any) { p.r.Errorf(v, format, args...) }, yamlutil.Describe)
}

// The ranges of a check's numbers.
const (
	minStatus = 100
	maxStatus = 599
)

// field is one key of a check as a reader found it: where (L: a YAML
// node, a position in an XML element), its value, whether the key is
// given, and whether its value is of the right type (a reader reports
// a wrong type itself).
type field[L, T any] struct {
	at      L
	v       T
	set, ok bool
}

// checkIn is one check as a reader (a mapping file's YAML, the metadata
// element's attributes) found its keys: what build turns into a Check by
// the rules both share.
type checkIn[L any] struct {
	whole                                                          L   // the check itself, for the problems of no one key
	line                                                           int // its line
	kind, name, address, url, body, maintenance, interval, timeout field[L, string]
	status, rise, fall                                             field[L, int]
	command                                                        field[L, []string]
}

// build checks the keys of in and returns the check, with the defaults
// filled in, and whether it has no problem. Each problem is reported with
// errorf at the key it is about, after what; describe renders a value's
// node in a message.
func (in *checkIn[L]) build(what string, errorf func(at L, format string, args ...any), describe func(L) string) (Check, bool) {
	c := Check{Line: in.line, Interval: DefaultCheckInterval, Rise: DefaultCheckRise, Fall: DefaultCheckFall}
	good := true
	bad := func(at L, format string, args ...any) {
		errorf(at, what+": "+format, args...)
		good = false
	}
	for _, f := range []*field[L, string]{&in.kind, &in.name, &in.address, &in.url, &in.body, &in.maintenance, &in.interval, &in.timeout} {
		good = good && (!f.set || f.ok)
	}
	for _, f := range []*field[L, int]{&in.status, &in.rise, &in.fall} {
		good = good && (!f.set || f.ok)
	}
	good = good && (!in.command.set || in.command.ok)
	dur := func(f *field[L, string], key string) (time.Duration, bool) {
		if !f.set || !f.ok {
			return 0, false
		}
		d, err := time.ParseDuration(f.v)
		if err != nil || d < minCheckInterval || d > maxCheckInterval {
			bad(f.at, "%s: want a duration from 100ms to 1h like \"1s\", got %s", key, describe(f.at))
			return 0, false
		}
		return d, true
	}
	if in.name.set && in.name.ok {
		c.Name = in.name.v
		if c.Name != "" && !validCheckName(c.Name) {
			bad(in.name.at, "name: want letters, digits, '-', '_' or '.', got %s", describe(in.name.at))
		}
	}
	if d, ok := dur(&in.interval, "interval"); ok {
		c.Interval = d
	}
	if in.rise.set && in.rise.ok {
		c.Rise = in.rise.v
	}
	if in.fall.set && in.fall.ok {
		c.Fall = in.fall.v
	}
	if in.maintenance.set && in.maintenance.ok {
		c.Maintenance = in.maintenance.v
		if c.Maintenance != "" && (!filepath.IsAbs(c.Maintenance) || strings.ContainsRune(c.Maintenance, 0)) {
			bad(in.maintenance.at, "maintenance: want an absolute file path, got %s", describe(in.maintenance.at))
		}
	}
	if !in.kind.set {
		errorf(in.whole, "%s: missing \"type\" (agent, tcp, http or exec)", what)
		return c, false
	}
	if !in.kind.ok {
		return c, false
	}
	switch k := CheckKind(in.kind.v); k {
	case CheckAgent, CheckTCP, CheckHTTP, CheckExec:
		c.Kind = k
	default:
		errorf(in.kind.at, "%s: type: want agent, tcp, http or exec, got %s", what, describe(in.kind.at))
		return c, false
	}
	if c.Name == "" {
		c.Name = string(c.Kind)
	}
	c.Timeout = min(DefaultCheckTimeout, c.Interval)
	if d, ok := dur(&in.timeout, "timeout"); ok {
		if d > c.Interval {
			bad(in.timeout.at, "timeout: %s is longer than the interval %s", d, c.Interval)
		}
		c.Timeout = d
	}
	// The keys of the other kinds are errors, each where it is.
	only := func(set, ok bool, at L, key string, kind CheckKind) bool {
		if !set {
			return false
		}
		if c.Kind != kind {
			bad(at, "%s: only for type %s", key, kind)
			return false
		}
		return ok
	}
	if only(in.address.set, in.address.ok, in.address.at, "address", CheckTCP) {
		c.Address = in.address.v
		if problem := checkHostPort(c.Address); problem != "" {
			bad(in.address.at, "address: %s", problem)
		}
	}
	if only(in.url.set, in.url.ok, in.url.at, "url", CheckHTTP) {
		c.URL = in.url.v
		if problem := checkURL(c.URL); problem != "" {
			bad(in.url.at, "url: %s", problem)
		}
	}
	if only(in.status.set, in.status.ok, in.status.at, "status", CheckHTTP) {
		c.Status = in.status.v
	}
	if only(in.body.set, in.body.ok, in.body.at, "body", CheckHTTP) {
		c.Body = in.body.v
	}
	if only(in.command.set, in.command.ok, in.command.at, "command", CheckExec) {
		c.Command = in.command.v
		if len(c.Command) == 0 || !filepath.IsAbs(c.Command[0]) {
			bad(in.command.at, "command: want a list, the program's absolute path first, like [/usr/local/bin/check, --web]")
		}
	}
	switch {
	case c.Kind == CheckTCP && !in.address.set:
		bad(in.whole, "missing \"address\" (host:port, like \"{ip}:80\")")
	case c.Kind == CheckHTTP && !in.url.set:
		bad(in.whole, "missing \"url\" (like \"http://{ip}/health\")")
	case c.Kind == CheckExec && !in.command.set:
		bad(in.whole, "missing \"command\"")
	}
	if c.Kind == CheckHTTP && c.Status == 0 {
		c.Status = 200
	}
	return c, good
}

// validCheckName reports whether s is a check name: what goes in a metric
// label and a log line without quoting.
func validCheckName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// checkHostPort says what is wrong with a tcp check's address, "" if
// nothing: host:port, the host an IP address or {ip}, the port 1..65535.
func checkHostPort(s string) string {
	host, port, ok := splitHostPort(s)
	if !ok {
		return fmt.Sprintf("want host:port like \"{ip}:80\" or \"[2001:db8::1]:443\", got %q", printable(s))
	}
	if host != placeholder {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Sprintf("host %q: want an IP address or {ip}", printable(host))
		}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Sprintf("port %q: want 1..65535", printable(port))
	}
	return ""
}

// splitHostPort splits host:port, with [host] for IPv6.
func splitHostPort(s string) (host, port string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", "", false
	}
	host, port = s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", "", false
		}
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return "", "", false
	}
	return host, port, host != "" && port != ""
}

// checkURL says what is wrong with an http check's URL, "" if nothing.
func checkURL(s string) string {
	u, err := url.Parse(strings.ReplaceAll(s, placeholder, exampleIP))
	switch {
	case err != nil:
		return fmt.Sprintf("want a URL like \"http://{ip}/health\", got %q", printable(s))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("want an http or https URL, got %q", printable(s))
	case u.Host == "" || u.User != nil:
		return fmt.Sprintf("want a URL with a host and no user, got %q", printable(s))
	}
	return ""
}

// anycast reads the anycast key of an IP.
func (p *fileParser) anycast(_, v *yaml.Node) {
	if b, ok := p.r.Bool(v, p.what()+": "+keyAnycast); ok {
		p.ipAnycast = b
	}
}

// setHealth records h as the health of the current level.
func (p *fileParser) setHealth(h *Health) {
	switch p.curLevel {
	case levelDefaults:
		p.defHealth = h
	case levelVM:
		p.vmHealth = h
	default:
		p.ipHealth = h
	}
}

// noteHealth records the health and anycast key of the IP just read, with
// prefix pfx, in the entry being read: the IP's health, else the entry's,
// else the file's.
func (p *fileParser) noteHealth(pfx netip.Prefix) {
	h := p.ipHealth
	if h == nil {
		h = p.vmHealth
	}
	if h == nil {
		h = p.defHealth
	}
	if h != nil {
		if p.entHealth == nil {
			p.entHealth = make(map[netip.Prefix]*Health)
		}
		p.entHealth[pfx] = h
	}
	if p.ipAnycast {
		if p.entAnycast == nil {
			p.entAnycast = make(map[netip.Prefix]bool)
		}
		p.entAnycast[pfx] = true
	}
}

// LookupVM is Lookup returning the whole entry (with its Health and
// Anycast), and whether there is one. The entry shares memory with the
// Mapping: do not modify it.
func (m *Mapping) LookupVM(name, uuid string) (VM, bool) {
	key, _ := m.Lookup(name, uuid)
	if key == "" {
		return VM{}, false
	}
	return m.vms[m.keys[key]], true
}

// ParseHealthYAML reads v, the value of a health key outside a mapping
// file, with the vocabulary and the rules of a mapping file's health key
// (package documentation, "Health checks and anycast"): the daemon's
// config gives the operator's checks of the routes from metadata and Nova
// this way (mapping.metadata.health.defaults, mapping.nova.health). file
// is the file v is in and what names the key in messages
// ("mapping.nova.health"); each problem is reported at its line. The Health is
// nil when there is a problem.
func ParseHealthYAML(file, what string, k, v *yaml.Node) (*Health, fileerr.ErrorList) {
	p := newFileParser(newBuilder(), file)
	p.curLevel, p.name = levelDefaults, what
	p.health(k, v)
	if len(p.r.Errs) > 0 {
		return nil, p.r.Errs
	}
	return p.defHealth, nil
}

// Equal reports whether two healths say the same (where they are aside).
func (h *Health) Equal(o *Health) bool {
	if h == nil || o == nil {
		return h == o
	}
	if h.OnFailure != o.OnFailure || h.InitialUp != o.InitialUp || len(h.Checks) != len(o.Checks) ||
		!slices.Equal(h.Depreference.Communities, o.Depreference.Communities) ||
		!eqPtr(h.Depreference.MED, o.Depreference.MED) || h.Depreference.Prepend != o.Depreference.Prepend {
		return false
	}
	for i := range h.Checks {
		a, b := &h.Checks[i], &o.Checks[i]
		if !slices.Equal(a.Command, b.Command) || a.Name != b.Name || a.Kind != b.Kind || a.Address != b.Address ||
			a.URL != b.URL || a.Status != b.Status || a.Body != b.Body || a.Interval != b.Interval ||
			a.Timeout != b.Timeout || a.Rise != b.Rise || a.Fall != b.Fall || a.Maintenance != b.Maintenance {
			return false
		}
	}
	return true
}

// SameHealth reports whether two maps of health by prefix say the same.
func SameHealth(a, b map[netip.Prefix]*Health) bool {
	return maps.EqualFunc(a, b, (*Health).Equal)
}
