package libvirt

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/mapping"
)

// MetadataConfig says which elements of the domains' metadata the adapter
// reads, and how it turns them into routes (docs/metadata.md). The trust
// rules are not the adapter's: the reconciler applies them.
type MetadataConfig struct {
	// Virtbgp reads virtbgp's element (mapping.MetadataNS), with
	// Options (the config's defaults).
	Virtbgp bool
	Options mapping.MetadataOptions
	// Nova reads Nova's element (mapping.NovaNS) and takes the IPs that
	// NovaOptions select, with its attributes.
	Nova        bool
	NovaOptions mapping.NovaOptions
}

// WithMetadata makes the adapter read the elements c enables from each
// active domain's live definition, and give them to the reconciler as
// reconcile.Domain.Claims. Without it no metadata is read.
func WithMetadata(c MetadataConfig) Option {
	return func(a *Adapter) {
		if c.Virtbgp || c.Nova {
			a.meta = &metaCache{cfg: c, gen: map[string]uint64{}, entries: map[string]metaEntry{}, cgen: map[string]uint64{}, configs: map[string]metaEntry{}, down: map[string]bool{}}
		}
	}
}

// metaCache holds, per domain UUID, the claims last read from its live
// metadata, so that an event that cannot change the metadata (a pause, a
// resume that is not a migration's) costs no RPC. Events that can change
// it (defined, started, resumed after an incoming migration, metadata
// changed; stopped and undefined drop the entry) bump the domain's
// generation, which makes the entry stale. A full resync (Domains) reads
// every active domain's metadata anew. Its own lock is never held across
// a libvirt call.
//
// It also holds the claims of each shut-off domain's persistent
// definition, read while it is off (on the hint of its stop or definition,
// or on a resync). A plain boot (Started Booted) makes the live
// definition a copy of the persistent one, so when that entry is still
// valid (no definition nor metadata change since it was read), the start
// takes it as the live claims and costs no RPC before its route is
// announced. libvirt cannot tell such a boot from `virsh create` of an XML
// of its own over a shut-off persistent domain, so the claims taken so are
// read live once more on the next pass (a hint the adapter offers): at
// worst the first pass after such a create announces what the persistent
// definition claims, and the next one corrects it.
type metaCache struct {
	cfg MetadataConfig

	mu      sync.Mutex
	gen     map[string]uint64 // by UUID: bumped by the events that can change the live metadata
	entries map[string]metaEntry
	cgen    map[string]uint64 // by UUID: bumped by the events that can change the persistent definition
	configs map[string]metaEntry
	down    map[string]bool // by UUID: stopped or undefined by the last event seen
	reads   uint64          // GetMetadata calls made, for tests and benchmarks
}

// metaEntry is the claims read at one generation of a domain.
type metaEntry struct {
	gen    uint64
	name   string // the name they were read under (messages hold it)
	claims *reconcile.Claims
	// booted: taken from the persistent definition at a boot, not read
	// from the live one; once claims gave them out, reread: the next call
	// reads the live one.
	booted, reread bool
}

// getMetadataFunc reads one element of a domain's live metadata by
// namespace: the element as libvirt returns it, or an error.
type getMetadataFunc func(ns string) (string, error)

// touch makes the cached claims of uuid stale; forget also drops them,
// and marks the domain down until it starts again.
func (c *metaCache) touch(uuid string, forget bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen[uuid]++
	if forget {
		delete(c.entries, uuid)
		c.down[uuid] = true
	}
}

// touchConfig makes the cached claims of uuid's persistent definition
// stale.
func (c *metaCache) touchConfig(uuid string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cgen[uuid]++
}

// boot marks uuid started; a plain boot takes the persistent definition's
// claims, if they are still valid, as the live ones.
func (c *metaCache) boot(uuid string, plain bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen[uuid]++
	delete(c.down, uuid)
	if ce, ok := c.configs[uuid]; ok && plain && ce.gen == c.cgen[uuid] {
		c.entries[uuid] = metaEntry{gen: c.gen[uuid], name: ce.name, claims: ce.claims, booted: true}
	}
}

// onEvent makes the claims of uuid stale on the lifecycle events that can
// change a domain's live metadata or its persistent definition.
func (c *metaCache) onEvent(uuid string, ev lv.DomainEventType, detail int) {
	switch ev {
	case lv.DOMAIN_EVENT_DEFINED:
		c.touch(uuid, false)
		c.touchConfig(uuid)
	case lv.DOMAIN_EVENT_STARTED:
		c.boot(uuid, lv.DomainEventStartedDetailType(detail) == lv.DOMAIN_EVENT_STARTED_BOOTED)
	case lv.DOMAIN_EVENT_RESUMED:
		switch lv.DomainEventResumedDetailType(detail) {
		case lv.DOMAIN_EVENT_RESUMED_MIGRATED, lv.DOMAIN_EVENT_RESUMED_POSTCOPY:
			c.touch(uuid, false)
		}
	case lv.DOMAIN_EVENT_STOPPED:
		c.touch(uuid, true)
	case lv.DOMAIN_EVENT_UNDEFINED:
		c.touch(uuid, true)
		c.touchConfig(uuid)
	}
}

// claims returns the claims of the domain (uuid, name) whose state is st:
// nil for an inactive domain (its live metadata is not the one that runs);
// the cached claims if they are still valid and force is false; else read
// with live. verify is true when the claims were taken from the
// persistent definition at a boot: the caller has the domain read again
// (a hint), which reads them live. For a shut-off domain it reads the
// persistent definition's claims with config (when stale: force does not
// apply), for its next boot. An error is a failed read (not an absent element, which
// is nil claims, nor a bad one, which is a Claim with Err).
func (c *metaCache) claims(uuid, name string, st lv.DomainState, force bool, live, config getMetadataFunc) (claims *reconcile.Claims, verify bool, err error) {
	if c == nil {
		return nil, false, nil
	}
	if st != lv.DOMAIN_RUNNING && st != lv.DOMAIN_PAUSED {
		c.mu.Lock()
		delete(c.entries, uuid)
		g := c.cgen[uuid]
		ce, ok := c.configs[uuid]
		c.mu.Unlock()
		// force is not needed here: the definition's claims are made
		// stale by its events (defined, metadata change) and a reconnect,
		// and claims taken from it at a boot are read live at once after.
		if st != lv.DOMAIN_SHUTOFF || config == nil || ok && ce.gen == g && ce.name == name {
			return nil, false, nil
		}
		claims, err := c.read(name, config)
		if err != nil {
			return nil, false, err
		}
		c.mu.Lock()
		c.configs[uuid] = metaEntry{gen: g, name: name, claims: claims}
		c.mu.Unlock()
		return nil, false, nil
	}
	c.mu.Lock()
	g := c.gen[uuid]
	e, ok := c.entries[uuid]
	if ok && !force && !e.reread && e.gen == g && e.name == name {
		verify := e.booted
		if verify {
			e.booted, e.reread = false, true
			c.entries[uuid] = e
		}
		c.mu.Unlock()
		return e.claims, verify, nil
	}
	c.mu.Unlock()
	claims, err = c.read(name, live)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	if prev, ok := c.entries[uuid]; ok && sameClaims(prev.claims, claims) {
		claims = prev.claims // keep the pointer: nothing changed
	}
	c.entries[uuid] = metaEntry{gen: g, name: name, claims: claims}
	return claims, false, nil
}

// willRead says which definition claims, called next for the domain
// (uuid, name) without force, will read: the live one when the cached
// claims are missing or stale, unless the last event said the domain
// stopped; then the persistent one when its cached claims are stale.
func (c *metaCache) willRead(uuid, name string) (live, config bool) {
	if c == nil {
		return false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[uuid] {
		ce, ok := c.configs[uuid]
		return false, !ok || ce.gen != c.cgen[uuid] || ce.name != name
	}
	e, ok := c.entries[uuid]
	return !ok || e.reread || e.gen != c.gen[uuid] || e.name != name, false
}

// prefetch starts reading the enabled elements with get, each in its own
// goroutine (libvirt's client multiplexes calls on one connection), so
// that the reads run beside the state read that claims waits for. It
// returns the getMetadataFunc that claims takes, which waits for the read
// of its namespace, and wait, which waits for them all: the caller must
// call it before get's domain object is freed.
func (c *metaCache) prefetch(get getMetadataFunc) (getMetadataFunc, func()) {
	type result struct {
		text string
		err  error
	}
	var wg sync.WaitGroup
	results := map[string]*result{}
	for _, ns := range c.namespaces() {
		r := &result{}
		results[ns] = r
		wg.Go(func() { r.text, r.err = get(ns) })
	}
	return func(ns string) (string, error) {
		wg.Wait()
		if r, ok := results[ns]; ok {
			return r.text, r.err
		}
		return get(ns)
	}, wg.Wait
}

// namespaces lists the namespaces of the elements read.
func (c *metaCache) namespaces() []string {
	var ns []string
	if c.cfg.Virtbgp {
		ns = append(ns, mapping.MetadataNS)
	}
	if c.cfg.Nova {
		ns = append(ns, mapping.NovaNS)
	}
	return ns
}

// prune drops the entries and generations of the domains not in keep.
func (c *metaCache) prune(keep map[string]bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	deleteExcept(c.entries, keep)
	deleteExcept(c.gen, keep)
	deleteExcept(c.down, keep)
	deleteExcept(c.configs, keep)
	deleteExcept(c.cgen, keep)
}

// deleteExcept deletes the keys of m that are not in keep.
func deleteExcept[V any](m map[string]V, keep map[string]bool) {
	maps.DeleteFunc(m, func(k string, _ V) bool { return !keep[k] })
}

// clear drops everything (a new connection).
func (c *metaCache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	clear(c.configs)
	for u := range c.gen {
		c.gen[u]++
	}
	for u := range c.cgen {
		c.cgen[u]++
	}
}

// Reads returns how many metadata elements were read from libvirt (one
// RPC each), for tests and benchmarks.
func (c *metaCache) Reads() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// read reads and parses the enabled elements of the domain named name.
func (c *metaCache) read(name string, get getMetadataFunc) (*reconcile.Claims, error) {
	var out reconcile.Claims
	if c.cfg.Virtbgp {
		text, found, err := getElement(get, mapping.MetadataNS)
		if err != nil {
			return nil, err
		}
		if found {
			m, err := c.cfg.Options.Parse(name, []byte(text))
			switch {
			case err != nil:
				out.Metadata = &reconcile.Claim{Err: oneLine(err)}
			case m != nil:
				out.Metadata = &reconcile.Claim{Routes: m.Routes, Health: m.Health}
			}
		}
	}
	if c.cfg.Nova {
		text, found, err := getElement(get, mapping.NovaNS)
		if err != nil {
			return nil, err
		}
		if found {
			inst, err := mapping.ParseNova(name, []byte(text))
			switch {
			case err != nil:
				out.Nova = &reconcile.Claim{Err: oneLine(err)}
			case inst != nil:
				routes, refused, err := inst.Routes(&c.cfg.NovaOptions)
				if err != nil {
					out.Nova = &reconcile.Claim{Err: err.Error()}
				} else {
					out.Nova = &reconcile.Claim{Routes: routes, Refused: refused, Health: inst.Health(routes, &c.cfg.NovaOptions)}
				}
			}
		}
	}
	if out.Metadata == nil && out.Nova == nil {
		return nil, nil
	}
	return &out, nil
}

// counted is get counting its calls in Reads. Only the calls that reach
// libvirt go through it.
func (c *metaCache) counted(get getMetadataFunc) getMetadataFunc {
	if c == nil || get == nil {
		return get
	}
	return func(ns string) (string, error) {
		c.mu.Lock()
		c.reads++
		c.mu.Unlock()
		return get(ns)
	}
}

// getElement reads one element; found is false when the domain has none
// (VIR_ERR_NO_DOMAIN_METADATA), or is gone or inactive by now (the event
// that says so follows).
func getElement(get getMetadataFunc, ns string) (text string, found bool, err error) {
	if get == nil {
		return "", false, nil
	}
	text, err = get(ns)
	switch {
	case err == nil:
		return text, true, nil
	case errors.Is(err, lv.ERR_NO_DOMAIN_METADATA), errors.Is(err, lv.ERR_NO_DOMAIN), errors.Is(err, lv.ERR_OPERATION_INVALID):
		return "", false, nil
	}
	return "", false, fmt.Errorf("read metadata %s: %w", ns, err)
}

// oneLine is an error's text on one line: a MetadataErrorList's problems
// joined with "; ".
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// sameClaims reports whether two claims say the same.
func sameClaims(a, b *reconcile.Claims) bool {
	if a == nil || b == nil {
		return a == b
	}
	return sameClaim(a.Metadata, b.Metadata) && sameClaim(a.Nova, b.Nova)
}

func sameClaim(a, b *reconcile.Claim) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Err != b.Err || len(a.Routes) != len(b.Routes) || len(a.Refused) != len(b.Refused) {
		return false
	}
	for i := range a.Routes {
		if !a.Routes[i].Equal(b.Routes[i]) {
			return false
		}
	}
	for i := range a.Refused {
		if a.Refused[i] != b.Refused[i] {
			return false
		}
	}
	return mapping.SameHealth(a.Health, b.Health)
}

// onMetadataChange is the VIR_DOMAIN_EVENT_ID_METADATA_CHANGE callback. It
// runs on libvirt's event loop: it makes no RPC. A change of an element of
// a namespace the adapter reads makes the domain's claims stale and is a
// hint; any other (another program's element, the title, the description)
// is ignored.
func (a *Adapter) onMetadataChange(_ *lv.Connect, d *lv.Domain, ev *lv.DomainEventMetadataChange) {
	if a.meta == nil || ev.Type != lv.DOMAIN_METADATA_ELEMENT {
		return
	}
	cfg := a.meta.cfg
	if !(cfg.Virtbgp && ev.NSURI == mapping.MetadataNS || cfg.Nova && ev.NSURI == mapping.NovaNS) {
		return
	}
	uuid, err := d.GetUUIDString()
	if err != nil {
		a.requestResync(resyncLost)
		return
	}
	uuid = strings.ToLower(uuid)
	name, _ := d.GetName()
	a.meta.touch(uuid, false)
	a.meta.touchConfig(uuid) // --live or --config: the event does not say
	a.offer(reconcile.Hint{UUID: uuid, Name: name, Event: "Metadata Changed", At: timeNow()})
	a.log.Debug("domain event", "domain", name, "uuid", uuid, "event", "Metadata Changed", "namespace", ev.NSURI)
}

// MetadataReads returns how many metadata elements the adapter read from
// libvirt (one RPC each), for tests and benchmarks.
func (a *Adapter) MetadataReads() uint64 { return a.meta.Reads() }
