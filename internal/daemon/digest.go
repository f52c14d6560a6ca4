package daemon

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/virtbgp/virtbgp/mapping"
)

// contentDigest is the SHA-256 (hex) of what a mapping says: each entry's
// key and UUID pin, and each of its routes with every resolved attribute
// (prefix, next hop, MED, local-pref, prepend, communities, large
// communities), in the mapping's order (entries by key, routes by prefix).
// Where an entry is (file, line), how the files are split, formatted or
// commented, and whether an attribute comes from defaults or is spelled
// out on the IP do not count: two hosts whose mappings announce the same
// routes for the same VMs have the same digest. It is what
// virtbgp_mapping_info exports and what decides whether a reload is a new
// generation.
//
// mapping.Digest, the files' bytes and names, is a different thing: the
// daemon uses it to skip reading files that did not change at all.
func contentDigest(m *mapping.Mapping) string {
	h := sha256.New()
	var buf []byte
	// Every field is length-prefixed or fixed-size, so that no two
	// mappings encode the same.
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	opt := func(v *uint32) {
		if v == nil {
			buf = append(buf, 0)
			return
		}
		buf = append(buf, 1)
		buf = binary.BigEndian.AppendUint32(buf, *v)
	}
	addr := func(a netip.Addr) {
		switch {
		case !a.IsValid():
			buf = append(buf, 0)
			return
		case a.Is4():
			b := a.As4()
			buf = append(append(buf, 4), b[:]...)
		default:
			b := a.As16()
			buf = append(append(buf, 6), b[:]...)
		}
		str(a.Zone())
	}
	for _, vm := range m.VMs() {
		buf = buf[:0]
		str(vm.Key)
		str(vm.UUID)
		buf = binary.AppendUvarint(buf, uint64(len(vm.Routes)))
		for _, r := range vm.Routes {
			addr(r.Prefix.Addr())
			buf = append(buf, byte(r.Prefix.Bits()))
			addr(r.NextHop) // the zero Addr: self
			opt(r.MED)
			opt(r.LocalPref)
			buf = append(buf, r.ASPathPrepend)
			buf = binary.AppendUvarint(buf, uint64(len(r.Communities)))
			for _, c := range r.Communities {
				buf = binary.BigEndian.AppendUint32(buf, c)
			}
			buf = binary.AppendUvarint(buf, uint64(len(r.LargeCommunities)))
			for _, c := range r.LargeCommunities {
				buf = binary.BigEndian.AppendUint32(buf, c.GlobalAdmin)
				buf = binary.BigEndian.AppendUint32(buf, c.LocalData1)
				buf = binary.BigEndian.AppendUint32(buf, c.LocalData2)
			}
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// origins finds where each entry of one mapping is, for status: the
// mapping package looks entries up by domain but has no lookup by key that
// returns the entry's file and line. It is built on the first report after
// a mapping is put in force (entries sorted by key, one file name shared
// by all entries of the file) and kept for that mapping.
type origins struct {
	m     *mapping.Mapping
	keys  []string // sorted, as m.VMs() returns them
	files []string // file names, indexed by at[i].file
	at    []origin // at[i] is where keys[i] is
}

type origin struct{ file, line int32 }

func newOrigins(m *mapping.Mapping) *origins {
	vms := m.VMs()
	o := &origins{m: m, keys: make([]string, len(vms)), at: make([]origin, len(vms))}
	file := map[string]int32{}
	for i, vm := range vms {
		f, ok := file[vm.File]
		if !ok {
			f = int32(len(o.files))
			file[vm.File] = f
			o.files = append(o.files, vm.File)
		}
		o.keys[i] = vm.Key
		o.at[i] = origin{file: f, line: int32(vm.Line)}
	}
	return o
}

// of returns "path:line" of the entry key, "" if the mapping has none.
func (o *origins) of(key string) string {
	i, found := slices.BinarySearchFunc(o.keys, key, strings.Compare)
	if !found {
		return ""
	}
	return o.files[o.at[i].file] + ":" + strconv.Itoa(int(o.at[i].line))
}
