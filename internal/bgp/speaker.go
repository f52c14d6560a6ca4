// Package bgp is virtbgp's BGP speaker: an embedded GoBGP v3 server that
// originates the host routes of the VMs running on this hypervisor and
// announces them to the configured peers (typically two top-of-rack routers).
//
// The speaker is announce-only. Its global import policy rejects everything
// learned from peers (only locally originated paths are accepted into the
// RIB), so nothing a ToR sends ends up in its RIB or is passed on to the
// other ToR; GoBGP still keeps what it receives in the peer's adj-RIB-in,
// so ToRs should not send us full tables. It opens no gRPC port and listens
// for BGP only when config.BGP.ListenPort is set.
//
// A Speaker implements reconcile.Speaker: Announce adds or replaces the path
// of one prefix, Withdraw removes exactly that prefix's path. It remembers
// what it announced, so that an unchanged re-announce sends nothing and a
// withdraw never touches another prefix. Peers reports the sessions for the
// status endpoint; session changes are logged.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

// DefaultConnectRetry is the connect-retry interval used when
// StartOptions.ConnectRetry is zero. GoBGP's own default is 120s, and it
// waits a random time between one and two intervals, so a ToR that comes
// back after a reboot would wait up to four minutes for us; 5s makes it
// 5-10s.
const DefaultConnectRetry = 5 * time.Second

// Names of the GoBGP policy objects the speaker creates.
const (
	importPolicyName    = "virtbgp-import"
	acceptLocalStmtName = "virtbgp-accept-local"
)

// StartOptions changes how StartWith starts the speaker.
type StartOptions struct {
	// Restarting starts the speaker in graceful-restart "restarting" mode
	// (RFC 4724 4.1): the peers are added with LocalRestarting set, so the
	// OPEN carries the Restart State bit and GoBGP defers sending routes
	// until it has received End-of-RIB from every peer (or its deferral
	// timer expires), then sends the full table and End-of-RIB. The caller
	// re-announces its routes right after StartWith returns. Requires
	// graceful restart to be enabled in the config.
	Restarting bool
	// ConnectRetry is the connect-retry interval of active sessions, rounded
	// down to whole seconds, at least 1s. Zero means DefaultConnectRetry.
	// GoBGP makes the first attempt 1-2s after a peer is added, whatever
	// this is.
	ConnectRetry time.Duration
	// DeferPeers starts the server without its peers; the first SetPeers
	// adds them (with Restarting as above). A restarting daemon re-adds its
	// routes in between, so that the peers get the full table at once.
	DeferPeers bool
}

type lifecycle int

const (
	lifecycleNew lifecycle = iota
	lifecycleRunning
	lifecycleStopping
	lifecycleStopped
)

// Speaker is the embedded BGP speaker. Create it with New, then Start it.
// Its methods are safe for concurrent use.
type Speaker struct {
	cfg config.BGP
	log *slog.Logger
	srv *server.BgpServer

	serveOnce sync.Once

	// mu owns the lifecycle state and the announced routes. It is held
	// across the GoBGP calls that change them, so that the map and GoBGP's
	// RIB change in the same order.
	mu          sync.Mutex
	state       lifecycle
	routes      map[netip.Prefix]mapping.Route
	stopWatches context.CancelFunc

	// peerMu owns peers (the session watch state).
	peerMu sync.Mutex
	peers  map[netip.Addr]*peerTrack

	// Under mu: the peers configured in GoBGP now, and the start options
	// (for the first SetPeers after a start with DeferPeers).
	configured map[netip.Addr]config.Peer
	startOpts  StartOptions
	peersAdded bool
	// grPending: peers added in restarting mode whose session has not
	// come up since (grsync.go). Under mu.
	grPending    map[netip.Addr]bool
	syncFinished chan struct{} // capacity 1
}

// New returns a speaker for cfg that logs to log. It does not start
// anything: call Start.
func New(cfg config.BGP, log *slog.Logger) *Speaker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Speaker{
		cfg:    cfg,
		log:    log,
		routes: make(map[netip.Prefix]mapping.Route),
		peers:  make(map[netip.Addr]*peerTrack, len(cfg.Peers)),

		grPending:    make(map[netip.Addr]bool),
		syncFinished: make(chan struct{}, 1),
	}
	for _, p := range cfg.Peers {
		a := p.Address.Unmap()
		s.peers[a] = &peerTrack{cfg: p, addr: a, state: StateIdle}
	}
	adapter := newSlogLogger(log.With("component", "gobgp"), s.onPeerDownLogged)
	adapter.onSyncFinished = s.onSyncFinished
	// No GrpcListenAddress option: NewBgpServer starts a gRPC server only
	// when that option gives a non-empty address.
	s.srv = server.NewBgpServer(server.LoggerOption(adapter))
	return s
}

// Server returns the underlying GoBGP server, for tests and diagnostics.
// Changing its configuration behind the speaker's back is not supported.
// Its methods block until Start has been called.
func (s *Speaker) Server() *server.BgpServer { return s.srv }

// Start starts the BGP server with the global configuration, installs the
// reject-all import policy, adds the peers and starts watching their
// session state. It is StartWith with zero StartOptions.
func (s *Speaker) Start(ctx context.Context) error {
	return s.StartWith(ctx, StartOptions{})
}

// StartWith is Start with options. A speaker can be started once; if
// StartWith fails, the server is stopped again and StartWith may be retried.
func (s *Speaker) StartWith(ctx context.Context, opts StartOptions) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case lifecycleRunning:
		return errors.New("start bgp speaker: already started")
	case lifecycleStopping, lifecycleStopped:
		return errors.New("start bgp speaker: already stopped")
	}
	if err := s.validate(opts, s.cfg.Peers); err != nil {
		return fmt.Errorf("start bgp speaker: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start bgp speaker: %w", err)
	}

	s.checkTCPMD5()
	s.serveOnce.Do(func() { go s.srv.Serve() })

	watchCtx, cancel := context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			cancel()
			// Undo what StartBgp did (listeners, peers) so that StartWith
			// can be retried; harmless if StartBgp itself failed.
			if stopErr := s.srv.StopBgp(context.Background(), &api.StopBgpRequest{}); stopErr != nil {
				s.log.Warn("stopping GoBGP after a failed start", "error", stopErr)
			}
		}
	}()

	listenPort := int32(-1) // GoBGP: a negative port means no listener
	if s.cfg.ListenPort != 0 {
		listenPort = int32(s.cfg.ListenPort)
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: listenPort,
	}}); err != nil {
		return fmt.Errorf("start bgp speaker: start GoBGP (AS %d, router-id %s, listen port %d): %w",
			s.cfg.ASN, s.cfg.RouterID, s.cfg.ListenPort, err)
	}
	if err := s.setImportPolicy(ctx); err != nil {
		return fmt.Errorf("start bgp speaker: %w", err)
	}
	if err := s.srv.WatchEvent(watchCtx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.onPeerEvent); err != nil {
		return fmt.Errorf("start bgp speaker: watch peer events: %w", err)
	}
	s.startOpts = opts
	s.configured = make(map[netip.Addr]config.Peer, len(s.cfg.Peers))
	if !opts.DeferPeers {
		if err := s.addPeers(ctx, s.cfg.Peers); err != nil {
			return fmt.Errorf("start bgp speaker: %w", err)
		}
	}

	if opts.Restarting {
		go s.watchSyncFinished(watchCtx)
	}
	s.stopWatches = cancel
	s.state = lifecycleRunning
	s.log.Info("bgp speaker started", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID,
		"listen_port", s.cfg.ListenPort, "peers", len(s.cfg.Peers),
		"graceful_restart", s.cfg.GracefulRestart.Enabled, "restarting", opts.Restarting)
	return nil
}

func (s *Speaker) validate(opts StartOptions, peers []config.Peer) error {
	if s.cfg.ASN == 0 {
		return errors.New("asn is not set")
	}
	if !s.cfg.RouterID.Is4() {
		return fmt.Errorf("router-id %q is not an IPv4 address", s.cfg.RouterID)
	}
	if opts.Restarting && !s.cfg.GracefulRestart.Enabled {
		return errors.New("restarting mode needs graceful restart enabled")
	}
	return validatePeers(peers)
}

func validatePeers(peers []config.Peer) error {
	seen := make(map[netip.Addr]bool, len(peers))
	for _, p := range peers {
		a := p.Address.Unmap()
		if !a.IsValid() {
			return errors.New("a peer has no address")
		}
		if seen[a] {
			return fmt.Errorf("peer %s is configured twice", a)
		}
		seen[a] = true
		if p.ASN == 0 {
			return fmt.Errorf("peer %s has no asn", a)
		}
		for _, f := range p.Families {
			if f != config.FamilyIPv4 && f != config.FamilyIPv6 {
				return fmt.Errorf("peer %s: unknown family %q", a, f)
			}
		}
	}
	return nil
}

// checkTCPMD5 logs an error for every peer with a password whose session
// cannot come up because its TCP MD5 signature cannot be set: GoBGP itself
// says so only in a debug message (outgoing connections) or a warning when
// the peer is added (the listener).
func (s *Speaker) checkTCPMD5() {
	probes := map[bool]error{}
	probe := func(listener bool) error {
		if err, ok := probes[listener]; ok {
			return err
		}
		err := probeTCPMD5(listener)
		probes[listener] = err
		return err
	}
	for _, p := range s.cfg.Peers {
		if p.Password == "" {
			continue
		}
		if !p.Passive {
			if err := probe(false); err != nil {
				s.log.Error("peer has a password but TCP MD5 signatures cannot be set on outgoing connections; the session cannot come up",
					"peer", p.Address, "error", err)
			}
		}
		if s.cfg.ListenPort != 0 {
			if err := probe(true); err != nil {
				s.log.Error("peer has a password but TCP MD5 signatures cannot be set on the BGP listener; sessions the peer opens cannot come up",
					"peer", p.Address, "error", err)
			}
		}
	}
}

// setImportPolicy makes the speaker import nothing from its peers.
//
// GoBGP applies the global import policy to every path that enters the
// global RIB, including the ones added with AddPath, so a bare "default
// reject" would reject our own routes too. The policy accepts local paths
// (route-type local) and rejects everything else by default.
func (s *Speaker) setImportPolicy(ctx context.Context) error {
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: importPolicyName,
		Statements: []*api.Statement{{
			Name:       acceptLocalStmtName,
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}}); err != nil {
		return fmt.Errorf("add import policy %s: %w", importPolicyName, err)
	}
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_IMPORT,
		Policies:      []*api.Policy{{Name: importPolicyName}},
		DefaultAction: api.RouteAction_REJECT,
	}}); err != nil {
		return fmt.Errorf("assign global import policy (default reject): %w", err)
	}
	return nil
}

// Stop stops the BGP server: GoBGP sends a Cease NOTIFICATION to every
// established peer, which makes the peers drop our routes at once
// (graceful restart does not apply to a Cease). A planned restart that
// should keep the routes in the peers for the restart time must instead end
// the process without calling Stop (the kernel then closes the sessions
// without a NOTIFICATION) and start the next one with
// StartOptions.Restarting. Stopping a speaker that is not running is a
// no-op. If ctx ends first, Stop returns its error and the server finishes
// stopping in the background. GoBGP's main loop goroutine (Serve) never
// ends; a stopped Speaker cannot be started again.
func (s *Speaker) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.state != lifecycleRunning {
		if s.state == lifecycleNew {
			s.state = lifecycleStopped
		}
		s.mu.Unlock()
		return nil
	}
	s.state = lifecycleStopping
	stopWatches := s.stopWatches
	s.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		done <- s.srv.StopBgp(context.Background(), &api.StopBgpRequest{})
	}()
	var err error
	select {
	case err = <-done:
		if err != nil {
			err = fmt.Errorf("stop bgp speaker: %w", err)
		}
	case <-ctx.Done():
		err = fmt.Errorf("stop bgp speaker: %w", ctx.Err())
	}

	s.mu.Lock()
	s.state = lifecycleStopped
	clear(s.routes)
	s.mu.Unlock()
	// Keep watching until StopBgp is through so that the sessions going
	// down are logged; cancel afterwards.
	go func() {
		<-done
		stopWatches()
	}()
	if err == nil {
		s.log.Info("bgp speaker stopped")
	}
	return err
}

// Announce announces r. If a route for the same prefix is announced with
// other attributes, it is replaced: GoBGP sends the new attributes, which
// implicitly withdraw the old ones. Announcing a route equal to the one
// announced (after normalization) does nothing. (GoBGP would not send an
// UPDATE for an identical path either, since Update.GetChanges compares the
// new best path with the old one, but the path would still go through its
// RIB.)
func (s *Speaker) Announce(ctx context.Context, r mapping.Route) error {
	nr, err := normalizeRoute(r)
	if err != nil {
		return fmt.Errorf("announce %s: %w", r.Prefix, err)
	}
	r = nr
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("announce %s: %w", r.Prefix, err)
	}
	old, had := s.routes[r.Prefix]
	if had && old.Equal(r) {
		return nil
	}
	path, err := buildPath(r, s.cfg.ASN)
	if err != nil {
		return fmt.Errorf("announce %s: %w", r.Prefix, err)
	}
	if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		return fmt.Errorf("announce %s: add path: %w", r, err)
	}
	s.routes[r.Prefix] = r
	if had {
		s.log.Debug("route replaced", "route", stringer{r}, "old", stringer{old})
	} else {
		s.log.Debug("route announced", "route", stringer{r})
	}
	return nil
}

// Withdraw withdraws the route announced for r's prefix; only the prefix
// of r matters. Withdrawing a prefix that is not announced is a no-op.
func (s *Speaker) Withdraw(ctx context.Context, r mapping.Route) error {
	if !r.Prefix.IsValid() {
		return errors.New("withdraw: invalid prefix")
	}
	prefix := r.Prefix.Masked()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("withdraw %s: %w", prefix, err)
	}
	old, had := s.routes[prefix]
	if !had {
		return nil
	}
	// Delete with the exact path we added. A DeletePath with a family and
	// no path (and no UUID) would delete every local path of the family.
	path, err := buildPath(old, s.cfg.ASN)
	if err != nil {
		return fmt.Errorf("withdraw %s: %w", prefix, err)
	}
	if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{
		TableType: api.TableType_GLOBAL,
		Family:    path.Family,
		Path:      path,
	}); err != nil {
		return fmt.Errorf("withdraw %s: delete path: %w", prefix, err)
	}
	delete(s.routes, prefix)
	s.log.Debug("route withdrawn", "route", stringer{old})
	return nil
}

// usable reports why routes cannot be changed now. s.mu is held.
func (s *Speaker) usable(ctx context.Context) error {
	switch s.state {
	case lifecycleNew:
		return errors.New("bgp speaker not started")
	case lifecycleStopping, lifecycleStopped:
		return errors.New("bgp speaker stopped")
	}
	return ctx.Err()
}

// Routes returns the routes currently announced, sorted by prefix.
func (s *Speaker) Routes() []mapping.Route {
	s.mu.Lock()
	out := make([]mapping.Route, 0, len(s.routes))
	for _, r := range s.routes {
		out = append(out, r.Clone())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b mapping.Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// stringer renders a route for the log only if the record is logged.
type stringer struct{ r mapping.Route }

// LogValue implements slog.LogValuer.
func (s stringer) LogValue() slog.Value { return slog.StringValue(s.r.String()) }
