package bgp

import (
	"fmt"
	"net/netip"

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
		t.lastError = reason
	}
	s.peerMu.Unlock()
}
