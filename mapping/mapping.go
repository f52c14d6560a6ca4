package mapping

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/virtbgp/virtbgp/fileerr"
)

// Error is one problem found while loading a mapping, at one line of one
// file. Its text is "file:line: problem" ("file: problem" when no line
// applies, as for a file that cannot be read). It is the error type of the
// public package fileerr, which the daemon's config reports with too.
type Error = fileerr.Error

// ErrorList is every problem found while loading a mapping, sorted by file
// and line. Load and Parse return one (as an error) when anything is wrong;
// its Error method renders one problem per line. fileerr.Errors gets it out
// of a wrapped error.
type ErrorList = fileerr.ErrorList

// Mapping is a loaded and validated mapping: which VM owns which service
// IPs, with their BGP attributes resolved. A Mapping is never modified after
// Load or Parse returns it, so any number of goroutines may use it at once.
// The nil *Mapping is an empty mapping.
type Mapping struct {
	vms      []VM             // sorted by key
	keys     map[string]int32 // key -> index in vms
	prefixes []prefixEntry    // every mapped prefix, sorted by compareEntry
	sources  []string
	routes   int
}

// VM is one entry under vms.
type VM struct {
	// Key is the entry's key: a libvirt domain name, or a domain UUID (in
	// lower case).
	Key string
	// UUID is the domain UUID the entry is bound to: the key itself for an
	// entry keyed by UUID, the uuid pin for a pinned name, "" for a name
	// without pin.
	UUID string
	// File and Line are where the entry's key is.
	File string
	Line int
	// Routes are the entry's routes with resolved attributes, sorted by
	// prefix (netip.Prefix.Compare). They share memory with the Mapping: do not modify them (use
	// Route.Clone to get a copy to change).
	Routes []Route
	// Health is, by prefix, how each route follows the VM's health (see
	// Health); a route without checks is not in it (nil when none has).
	// Shared with the Mapping: do not modify.
	Health map[netip.Prefix]*Health
	// Anycast holds the prefixes marked "anycast: true", which other
	// entries may map too (nil when none is).
	Anycast map[netip.Prefix]bool
}

// keyedByUUID reports whether the entry's key is a UUID.
func (v *VM) keyedByUUID() bool { return v.UUID != "" && v.UUID == v.Key }

// prefixEntry is one mapped prefix: which VM maps it, at which line of the
// VM's file.
//
// The prefix is kept as its address in 16 bytes (an IPv4 address as
// ::ffff:a.b.c.d), its family and its length: 32 bytes without pointers,
// where a netip.Prefix would make 40 with one, for the garbage collector to
// scan. A mapped prefix never has a zone.
type prefixEntry struct {
	hi, lo uint64 // the address
	vm     int32  // index in the VM list
	line   int32
	bits   uint8
	is6    bool
	// anycast: the IP is marked anycast, and other entries may map it.
	anycast bool
}

// newPrefixEntry returns the entry of prefix p (valid, without zone).
func newPrefixEntry(p netip.Prefix, vm, line int32) prefixEntry {
	a := p.Addr().As16()
	return prefixEntry{
		hi: binary.BigEndian.Uint64(a[:8]), lo: binary.BigEndian.Uint64(a[8:]),
		vm: vm, line: line, bits: uint8(p.Bits()), is6: p.Addr().Is6(),
	}
}

// prefix returns the entry's prefix.
func (e *prefixEntry) prefix() netip.Prefix {
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], e.hi)
	binary.BigEndian.PutUint64(a[8:], e.lo)
	addr := netip.AddrFrom16(a)
	if !e.is6 {
		addr = addr.Unmap()
	}
	return netip.PrefixFrom(addr, int(e.bits))
}

// compareEntry orders entries as netip.Prefix.Compare orders their
// prefixes (which are masked): by address (IPv4 first), then by length,
// shortest first. A prefix thus comes right before the prefixes it
// contains, which the overlap check relies on.
func compareEntry(x, y *prefixEntry) int {
	switch {
	case x.is6 != y.is6:
		if x.is6 {
			return 1
		}
		return -1
	case x.hi != y.hi:
		return cmp.Compare(x.hi, y.hi)
	case x.lo != y.lo:
		return cmp.Compare(x.lo, y.lo)
	}
	return cmp.Compare(x.bits, y.bits)
}

// Lookup returns the entry that maps the libvirt domain with this name and
// UUID, and its routes: the entry keyed by the domain's UUID if there is
// one, else the entry keyed by the domain's name, unless that entry is pinned
// to another UUID. The UUID may be in any case. Without a match it returns
// "" and nil.
//
// The routes are the Mapping's own, shared with every caller: they must not
// be modified (use Route.Clone to get a copy to change).
func (m *Mapping) Lookup(name, uuid string) (vmKey string, routes []Route) {
	if m == nil {
		return "", nil
	}
	if uuid != "" {
		uuid = lowerUUID(uuid)
		if i, ok := m.keys[uuid]; ok && m.vms[i].keyedByUUID() {
			return m.vms[i].Key, m.vms[i].Routes
		}
	}
	if i, ok := m.keys[name]; ok {
		v := &m.vms[i]
		if v.keyedByUUID() || (v.UUID != "" && v.UUID != uuid) {
			return "", nil
		}
		return v.Key, v.Routes
	}
	return "", nil
}

// Owner returns the key of the entry that maps exactly the prefix p (the
// same address and length), and whether there is one. The daemon asks it
// before every announcement, so that nothing the mapping does not name is
// ever announced.
func (m *Mapping) Owner(p netip.Prefix) (vmKey string, ok bool) {
	if m == nil || !p.IsValid() {
		return "", false
	}
	if p.Addr().Zone() != "" {
		return "", false // no mapped prefix has one
	}
	key := newPrefixEntry(p, 0, 0)
	i, found := slices.BinarySearchFunc(m.prefixes, &key, func(e prefixEntry, key *prefixEntry) int {
		return compareEntry(&e, key)
	})
	if !found {
		return "", false
	}
	return m.vms[m.prefixes[i].vm].Key, true
}

// VMs returns every entry, sorted by key. The slice is the caller's; the
// entries' Routes are shared and must not be modified.
func (m *Mapping) VMs() []VM {
	if m == nil {
		return nil
	}
	return slices.Clone(m.vms)
}

// Stats returns the number of entries and of routes.
func (m *Mapping) Stats() (vms, routes int) {
	if m == nil {
		return 0, 0
	}
	return len(m.vms), m.routes
}

// Sources returns the files the mapping was read from, in the order read.
func (m *Mapping) Sources() []string {
	if m == nil {
		return nil
	}
	return slices.Clone(m.sources)
}
