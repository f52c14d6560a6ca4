package bgp

import (
	"fmt"
	"net/netip"
	"time"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// notificationReason returns the peer address and a reason for people of
// GoBGP's "sent notification" and "received notification" log lines, the
// only place GoBGP says why a session that never came up failed (a wrong
// AS number, a bad router ID, a refused capability): ok is false for any
// other message. TestPeerLastError fails if GoBGP renames them or their
// fields.
func notificationReason(msg string, fields gobgplog.Fields) (addr, reason string, ok bool) {
	addr, _ = fields["Key"].(string)
	if addr == "" {
		return "", "", false
	}
	switch msg {
	case "sent notification":
		e, isErr := fields["Data"].(*bgp.MessageError)
		if !isErr {
			return "", "", false
		}
		reason = fmt.Sprintf("sent NOTIFICATION %s", bgp.NewNotificationErrorCode(e.TypeCode, e.SubTypeCode))
		if e.Message != "" {
			reason += ": " + e.Message
		}
		return addr, reason, true
	case "received notification":
		code, _ := fields["Code"].(uint8)
		sub, _ := fields["Subcode"].(uint8)
		reason = fmt.Sprintf("received NOTIFICATION %s", bgp.NewNotificationErrorCode(code, sub))
		if c, _ := fields["Communicated-Reason"].(string); c != "" {
			reason += fmt.Sprintf(": %q", c)
		}
		return addr, reason, true
	}
	return "", "", false
}

// onNotificationLogged records the last NOTIFICATION of a session as the
// peer's last error, shown in status until the session is established.
func (s *Speaker) onNotificationLogged(addr, reason string) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return
	}
	s.peerMu.Lock()
	if t := s.peers[a.Unmap()]; t != nil {
		t.lastError, t.notifiedAt = reason, time.Now()
	}
	s.peerMu.Unlock()
}

// refusedAfter is how long after GoBGP sent a NOTIFICATION the end of the
// OPEN exchange is put down to it: the state event comes through GoBGP's
// watch, a moment after the log line.
const refusedAfter = 2 * time.Second

// peerRefused is the last error of a session that the peer ended during
// the OPEN exchange: GoBGP v3.37.0 does not log a NOTIFICATION received
// before the session is established, nor say why (fsm.go opensent takes
// it for an invalid message), so the peer's own log has the reason.
const peerRefused = "the peer ended the session during the OPEN exchange (it refused this host's OPEN: see its log, and its config of this host's address and AS)"

// refusedByPeer records, for a session that went back to Idle from
// OpenSent or OpenConfirm at now, that the peer refused it, unless GoBGP
// refused the peer's OPEN itself (a NOTIFICATION it just sent, whose
// reason stays). Called with the Speaker's peerMu held.
func refusedByPeer(t *peerTrack, now time.Time) {
	if now.Sub(t.notifiedAt) > refusedAfter {
		t.lastError = peerRefused
	}
}
