package rig

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"golang.org/x/sys/unix"

	"github.com/virtbgp/virtbgp/integration/lab"
)

// Floor is the fastest speaker there can be, the measure of what BIRD, the
// kernel and this machine allow: a bare BGP session from hvA's address
// that has every UPDATE encoded before the session comes up and hands
// them to the socket in one write. It keeps no table, reads nothing after
// the handshake and stands for no product; a suite shows it beside virtbgp
// and ExaBGP so that their figures can be read against the peer's own
// cost.
type Floor struct {
	conn net.Conn
	done chan struct{}
}

// EncodeUpdates encodes one UPDATE per route, the same messages virtbgp
// (GoBGP) sends for them to an eBGP peer: ORIGIN IGP, AS_PATH of the
// host's AS, the host's address as NEXT_HOP, MED and communities.
func (r *Rig) EncodeUpdates(routes []Route) ([]byte, error) {
	var out []byte
	nh := r.Host.IPv4.String()
	for _, rt := range routes {
		comms := make([]uint32, 0, len(rt.Communities))
		for _, c := range rt.Communities {
			v, err := parseCommunity(c)
			if err != nil {
				return nil, err
			}
			comms = append(comms, v)
		}
		attrs := []bgp.PathAttributeInterface{
			bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
			bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{r.Host.ASN})}),
			bgp.NewPathAttributeMultiExitDisc(rt.MED),
			bgp.NewPathAttributeCommunities(comms),
			bgp.NewPathAttributeNextHop(nh),
		}
		nlri := []*bgp.IPAddrPrefix{bgp.NewIPAddrPrefix(uint8(rt.Prefix.Bits()), rt.Prefix.Addr().String())}
		b, err := bgp.NewBGPUpdateMessage(nil, attrs, nlri).Serialize()
		if err != nil {
			return nil, fmt.Errorf("floor: encode %s: %w", rt.Prefix, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

func parseCommunity(s string) (uint32, error) {
	hi, lo, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("floor: community %q", s)
	}
	return uint32(a)<<16 | uint32(b), nil
}

// StartFloor opens a session from the host's address to BIRD and returns
// when it is established (BIRD's KEEPALIVE answered ours).
func (r *Rig) StartFloor(ctx context.Context) (*Floor, error) {
	conn, err := dialInNS(ctx, filepath.Join("/run/netns", r.Host.NS),
		netip.AddrPortFrom(r.Host.IPv4, 0), netip.AddrPortFrom(r.Host.ToR(lab.BIRDv4), 179))
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	f := &Floor{conn: conn, done: make(chan struct{})}
	if err := f.handshake(ctx, r.Host.ASN, r.Host.IPv4); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("floor: %w", err)
	}
	go f.drain()
	return f, nil
}

func (f *Floor) handshake(ctx context.Context, asn uint32, id netip.Addr) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = f.conn.SetDeadline(dl)
	}
	defer f.conn.SetDeadline(time.Time{})
	as2 := uint16(asn)
	if asn > 0xffff {
		as2 = bgp.AS_TRANS
	}
	open := bgp.NewBGPOpenMessage(as2, 90, id.String(), []bgp.OptionParameterInterface{
		bgp.NewOptionParameterCapability([]bgp.ParameterCapabilityInterface{
			bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
			bgp.NewCapFourOctetASNumber(asn),
		}),
	})
	if err := f.send(open); err != nil {
		return err
	}
	if _, err := f.expect(bgp.BGP_MSG_OPEN); err != nil {
		return err
	}
	if err := f.send(bgp.NewBGPKeepAliveMessage()); err != nil {
		return err
	}
	_, err := f.expect(bgp.BGP_MSG_KEEPALIVE)
	return err
}

func (f *Floor) send(m *bgp.BGPMessage) error {
	b, err := m.Serialize()
	if err != nil {
		return err
	}
	_, err = f.conn.Write(b)
	return err
}

// expect reads the next message and fails unless it has type typ.
func (f *Floor) expect(typ uint8) ([]byte, error) {
	hdr := make([]byte, bgp.BGP_HEADER_LENGTH)
	if _, err := io.ReadFull(f.conn, hdr); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	n := int(binary.BigEndian.Uint16(hdr[16:18]))
	if n < bgp.BGP_HEADER_LENGTH {
		return nil, fmt.Errorf("read: message length %d", n)
	}
	body := make([]byte, n-bgp.BGP_HEADER_LENGTH)
	if _, err := io.ReadFull(f.conn, body); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if hdr[18] != typ {
		if hdr[18] == bgp.BGP_MSG_NOTIFICATION && len(body) >= 2 {
			return nil, fmt.Errorf("BIRD sent NOTIFICATION %d/%d", body[0], body[1])
		}
		return nil, fmt.Errorf("got message type %d, want %d", hdr[18], typ)
	}
	return body, nil
}

// drain reads and drops what BIRD sends after the handshake (its routes,
// End-of-RIB, KEEPALIVEs), so that BIRD never blocks on the session.
func (f *Floor) drain() {
	defer close(f.done)
	_, _ = io.Copy(io.Discard, f.conn)
}

// Write hands the encoded UPDATEs to the socket in one write.
func (f *Floor) Write(updates []byte) error {
	if _, err := f.conn.Write(updates); err != nil {
		return fmt.Errorf("floor: write: %w", err)
	}
	return nil
}

// Close ends the session (a Cease NOTIFICATION, then the connection):
// BIRD withdraws everything it learnt on it.
func (f *Floor) Close() error {
	_ = f.send(bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN, nil))
	err := f.conn.Close()
	<-f.done
	return err
}

// dialInNS connects to raddr from laddr inside the network namespace at
// nsPath: the socket is made by a thread that has joined the namespace,
// and keeps it; the thread goes back to its own namespace afterwards (and
// dies with its goroutine if it cannot).
func dialInNS(ctx context.Context, nsPath string, laddr, raddr netip.AddrPort) (net.Conn, error) {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netns: %w", err)
	}
	defer self.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netns: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netns %s: %w", nsPath, err)
	}
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(laddr), Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", raddr.String())
	if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	} // else: the thread stays locked and ends with this goroutine
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s in %s: %w", raddr, laddr, nsPath, err)
	}
	return conn, nil
}
