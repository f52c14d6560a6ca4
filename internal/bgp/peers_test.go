package bgp

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	packet "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/internal/config"
)

func TestAPIPeer(t *testing.T) {
	h := &captureHandler{level: slog.LevelDebug}
	s := New(config.BGP{
		ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.1"),
		GracefulRestart: config.GracefulRestart{Enabled: true, RestartTime: 90 * time.Second,
			LongLivedStaleTime: 3600 * time.Second, Notification: true},
	}, slog.New(h))
	p := s.apiPeer(config.Peer{
		Address:      netip.MustParseAddr("::ffff:192.0.2.1"),
		Port:         1179,
		ASN:          64512,
		Password:     "pw",
		Passive:      true,
		HoldTime:     30 * time.Second,
		Keepalive:    10 * time.Second,
		MultihopTTL:  3,
		LocalAddress: netip.MustParseAddr("192.0.2.2"),
	}, StartOptions{Restarting: true, ConnectRetry: 2500 * time.Millisecond})

	c, tr, tm := p.Conf, p.Transport, p.Timers.Config
	if c.NeighborAddress != "192.0.2.1" || c.PeerAsn != 64512 || c.AuthPassword != "pw" || !c.AllowAspathLoopLocal {
		t.Errorf("conf %v", c)
	}
	if tr.RemotePort != 1179 || !tr.PassiveMode || tr.LocalAddress != "192.0.2.2" {
		t.Errorf("transport %v", tr)
	}
	if tm.HoldTime != 30 || tm.KeepaliveInterval != 10 || tm.ConnectRetry != 2 {
		t.Errorf("timers %v", tm)
	}
	if m := p.EbgpMultihop; m == nil || !m.Enabled || m.MultihopTtl != 3 {
		t.Errorf("multihop %v", m)
	}
	if g := p.GracefulRestart; g == nil || !g.Enabled || g.RestartTime != 90 || !g.LocalRestarting ||
		!g.LonglivedEnabled || !g.NotificationEnabled {
		t.Errorf("graceful restart %v", g)
	}
	// Default families: IPv4 and IPv6 unicast, each with MP graceful restart
	// and LLGR.
	var fams []string
	for _, af := range p.AfiSafis {
		fams = append(fams, af.Config.Family.Afi.String())
		if !af.Config.Enabled || af.MpGracefulRestart == nil || !af.MpGracefulRestart.Config.Enabled ||
			af.LongLivedGracefulRestart == nil || af.LongLivedGracefulRestart.Config.RestartTime != 3600 {
			t.Errorf("afi-safi %v", af)
		}
	}
	if want := []string{"AFI_IP", "AFI_IP6"}; !slices.Equal(fams, want) {
		t.Errorf("families %v, want %v", fams, want)
	}

	// Without graceful restart, multihop, local address; the default
	// connect-retry; hold time 0 (GoBGP cannot propose it: warned).
	s = New(config.BGP{ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.1")}, slog.New(h))
	p = s.apiPeer(config.Peer{Address: netip.MustParseAddr("2001:db8::1"), ASN: 65001,
		Families: []config.Family{config.FamilyIPv6}}, StartOptions{})
	if p.GracefulRestart != nil || p.EbgpMultihop != nil || p.Transport.LocalAddress != "" || p.Transport.PassiveMode {
		t.Errorf("minimal peer %v", p)
	}
	if tm := p.Timers.Config; tm.ConnectRetry != 1 || tm.HoldTime != 0 {
		t.Errorf("minimal timers %v", tm)
	}
	if len(p.AfiSafis) != 1 || p.AfiSafis[0].Config.Family.Afi != api.Family_AFI_IP6 || p.AfiSafis[0].MpGracefulRestart != nil {
		t.Errorf("minimal afi-safis %v", p.AfiSafis)
	}
	if !slices.ContainsFunc(h.messages(), func(m string) bool { return strings.Contains(m, "hold-time 0") }) {
		t.Errorf("no hold-time warning in %v", h.messages())
	}
}

// TestAPIPeerNotification: the N bit (RFC 8538) goes with graceful restart
// and the notification setting.
func TestAPIPeerNotification(t *testing.T) {
	for _, c := range []struct {
		enabled, notification, want bool
	}{
		{true, true, true},
		{true, false, false},
		{false, true, false}, // no graceful restart capability at all
	} {
		s := New(config.BGP{ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.1"),
			GracefulRestart: config.GracefulRestart{Enabled: c.enabled, RestartTime: time.Second, Notification: c.notification},
		}, nil)
		p := s.apiPeer(config.Peer{Address: netip.MustParseAddr("192.0.2.9"), ASN: 65000}, StartOptions{})
		if got := p.GetGracefulRestart().GetNotificationEnabled(); got != c.want {
			t.Errorf("enabled %v, notification %v: NotificationEnabled %v, want %v", c.enabled, c.notification, got, c.want)
		}
	}
}

// TestGRSupport classifies the capabilities of a peer's OPEN.
func TestGRSupport(t *testing.T) {
	gr := packet.NewCapGracefulRestart(false, false, 120, nil)
	llgr := packet.NewCapLongLivedGracefulRestart(nil)
	other := packet.NewCapFourOctetASNumber(65000)
	for _, c := range []struct {
		name string
		caps []packet.ParameterCapabilityInterface
		want GRSupport
	}{
		{"nothing", nil, GRNone},
		{"other capabilities", []packet.ParameterCapabilityInterface{other}, GRNone},
		{"graceful restart", []packet.ParameterCapabilityInterface{other, gr}, GRHelper},
		{"both", []packet.ParameterCapabilityInterface{llgr, other, gr}, GRLongLived},
		{"LLGR without graceful restart", []packet.ParameterCapabilityInterface{llgr}, GRNone},
	} {
		if got := grSupport(c.caps); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestRecentReconnects keeps the re-adds within fastReconnectWindow.
func TestRecentReconnects(t *testing.T) {
	now := time.Date(2025, 6, 4, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	for _, c := range []struct {
		name string
		at   []time.Time
		want int
	}{
		{"none", nil, 0},
		{"all recent", []time.Time{ago(20 * time.Second), ago(time.Second)}, 2},
		{"one too old", []time.Time{ago(fastReconnectWindow), ago(29 * time.Second), ago(0)}, 2},
		{"all too old", []time.Time{ago(time.Hour), ago(31 * time.Second)}, 0},
	} {
		got := recentReconnects(c.at, now)
		if len(got) != c.want {
			t.Errorf("%s: %d recent, want %d", c.name, len(got), c.want)
		}
		for _, at := range got {
			if now.Sub(at) >= fastReconnectWindow {
				t.Errorf("%s: kept %v, %v before now", c.name, at, now.Sub(at))
			}
		}
	}
}
