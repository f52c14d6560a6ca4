package mapping

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestCompareEntry checks that the prefix index is in netip.Prefix.Compare
// order, the one order of prefixes, and that its entries keep their prefix.
func TestCompareEntry(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func() netip.Prefix {
		var a netip.Addr
		if rng.IntN(2) == 0 {
			a = netip.AddrFrom4([4]byte{192, 0, byte(rng.IntN(4)), byte(rng.IntN(256))})
		} else {
			var b [16]byte
			b[0], b[1], b[15] = 0x20, 0x01, byte(rng.IntN(4))
			a = netip.AddrFrom16(b)
		}
		p, _ := a.Prefix(a.BitLen() - rng.IntN(8))
		return p
	}
	sign := func(c int) int { return min(max(c, -1), 1) }
	for range 10_000 {
		a, b := random(), random()
		ea, eb := newPrefixEntry(a, 0, 0), newPrefixEntry(b, 0, 0)
		if ea.prefix() != a {
			t.Fatalf("entry of %s has prefix %s", a, ea.prefix())
		}
		if got, want := sign(compareEntry(&ea, &eb)), a.Compare(b); got != want {
			t.Fatalf("compareEntry(%s, %s) = %d, netip.Prefix.Compare %d", a, b, got, want)
		}
	}
}
