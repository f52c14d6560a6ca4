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
// of one prefix, Withdraw removes exactly that prefix's path. It keeps no
// route state of its own: GoBGP's RIB holds the paths and the caller (the
// reconciler) what it announced. Peers reports the sessions for the status
// endpoint; session changes are logged.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

// DefaultConnectRetry is the connect-retry interval used when
// StartOptions.ConnectRetry is zero. GoBGP's own default is 120s, and it
// waits a random time between one and two intervals before each attempt
// (fsm.go connectLoop), so a ToR that comes back after a reboot would wait
// up to four minutes for us; 1s (GoBGP's least, minConnectRetryInterval)
// makes it 1-2s. An attempt is one TCP SYN (the dial's timeout is the
// interval less a second, at least 1s), cheap even against a ToR that is
// away for long.
const DefaultConnectRetry = time.Second

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
	// NextHop finds the next hop "self" of the family other than a
	// session's own (export.go); nil means KernelNextHop, whose answers
	// follow the host's address changes.
	NextHop NextHopFunc
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

	// mu owns the lifecycle state and the peer configuration (cfg.Peers
	// and the fields below). It is held across the GoBGP calls that change
	// them, so that they and GoBGP change in the same order; route changes
	// hold it too, so that none reaches GoBGP once Stop has begun.
	mu          sync.Mutex
	state       lifecycle
	stopWatches context.CancelFunc
	// configured: the peers configured in GoBGP now. startOpts: the start
	// options (for the first SetPeers after a start with DeferPeers).
	configured map[netip.Addr]config.Peer
	startOpts  StartOptions
	peersAdded bool
	// grPending: peers added in restarting mode whose session has not
	// come up since (grsync.go).
	grPending map[netip.Addr]bool

	// grCheck asks watchRestarting to look at the pending peers (capacity
	// 1: one pending request covers any number of events).
	grCheck chan struct{}
	// export is the export policy in force, nextHop what finds the next
	// hops of the other family (mu).
	export  exportPlan
	nextHop NextHopFunc
	// exportCheck asks watchExport to re-plan the export policy (capacity
	// 1, as grCheck).
	exportCheck chan struct{}

	// sessionCheck asks watchSessions to look at the peers onPeerState
	// marked (capacity 1, as grCheck).
	sessionCheck chan struct{}

	// peerMu owns peers (the session watch state).
	peerMu sync.Mutex
	peers  map[netip.Addr]*peerTrack
}

// New returns a speaker for cfg that logs to log. It does not start
// anything: call Start.
func New(cfg config.BGP, log *slog.Logger) *Speaker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Speaker{
		cfg:       cfg,
		log:       log,
		peers:     make(map[netip.Addr]*peerTrack, len(cfg.Peers)),
		grPending: make(map[netip.Addr]bool),
		grCheck:   make(chan struct{}, 1),

		sessionCheck: make(chan struct{}, 1),
		exportCheck:  make(chan struct{}, 1),
	}
	for _, p := range cfg.Peers {
		a := p.Address.Unmap()
		s.peers[a] = &peerTrack{cfg: p, addr: a, state: StateIdle}
	}
	adapter := newSlogLogger(log.With("component", "gobgp"), s.onPeerDownLogged)
	// No GrpcListenAddress option: NewBgpServer starts a gRPC server only
	// when that option gives a non-empty address.
	s.srv = server.NewBgpServer(server.LoggerOption(adapter))
	return s
}

// Start starts the BGP server with the global configuration, installs the
// reject-all import policy, adds the peers and starts watching their
// session state. It is StartWith with zero StartOptions.
func (s *Speaker) Start(ctx context.Context) error {
	return s.StartWith(ctx, StartOptions{})
}

// StartWith is Start with options. A speaker can be started once; if
// StartWith fails, the server is stopped again and StartWith may be retried.
// The configuration must be valid (config.Load checks it); StartWith checks
// only what the configuration cannot: the options against it. Its errors
// say what failed, not that the start did: the caller says that.
func (s *Speaker) StartWith(ctx context.Context, opts StartOptions) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case lifecycleRunning:
		return errors.New("already started")
	case lifecycleStopping, lifecycleStopped:
		return errors.New("already stopped")
	}
	if err := s.validate(opts); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
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
				s.log.Warn("cannot stop GoBGP after a failed start", "error", stopErr)
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
		return fmt.Errorf("start GoBGP (asn %d, router_id %s, listen_port %d): %w",
			s.cfg.ASN, s.cfg.RouterID, s.cfg.ListenPort, err)
	}
	if err := s.setImportPolicy(ctx); err != nil {
		return err
	}
	s.nextHop = opts.NextHop
	if s.nextHop == nil {
		s.nextHop = KernelNextHop
		if err := watchAddresses(watchCtx.Done(), s.kickExport); err != nil {
			s.log.Warn("cannot follow the host's address changes; next hops of the other family are looked up at start and reload only", "error", err)
		}
	}
	if err := s.setExportPolicy(ctx); err != nil {
		return err
	}
	watch := &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}
	if opts.Restarting {
		// grsync.go: the End-of-RIBs the peers send.
		watch.Table = &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{
			{Type: api.WatchEventRequest_Table_Filter_EOR},
		}}
	}
	if err := s.srv.WatchEvent(watchCtx, watch, s.onWatchEvent); err != nil {
		return fmt.Errorf("watch GoBGP events: %w", err)
	}
	s.startOpts = opts
	s.configured = make(map[netip.Addr]config.Peer, len(s.cfg.Peers))
	if !opts.DeferPeers {
		if err := s.addPeers(ctx, s.cfg.Peers); err != nil {
			return err
		}
	}

	if opts.Restarting {
		go s.watchRestarting(watchCtx)
	}
	go s.watchSessions(watchCtx)
	go s.watchExport(watchCtx)
	s.stopWatches = cancel
	s.state = lifecycleRunning
	gr := s.cfg.GracefulRestart
	s.log.Info("bgp speaker started", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID,
		"listen_port", s.cfg.ListenPort, "peers", len(s.cfg.Peers),
		"graceful_restart", gr.Enabled, "restart_time", gr.RestartTime,
		"long_lived_stale_time", gr.LongLivedStaleTime, "notification", gr.Notification,
		"restarting", opts.Restarting)
	return nil
}

// validate checks what GoBGP would accept but cannot work: no AS, a router
// ID that is not IPv4, restarting mode without graceful restart. The peers
// are config.Load's to check; GoBGP itself refuses a peer added twice.
func (s *Speaker) validate(opts StartOptions) error {
	if s.cfg.ASN == 0 {
		return errors.New("asn is not set")
	}
	if !s.cfg.RouterID.Is4() {
		return fmt.Errorf("router_id %q is not an IPv4 address", s.cfg.RouterID)
	}
	if opts.Restarting && !s.cfg.GracefulRestart.Enabled {
		return errors.New("restarting mode needs graceful restart enabled")
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
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: importPolicy()}); err != nil {
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

// Stop stops the BGP server: GoBGP sends a Cease NOTIFICATION (Peer
// De-configured; a Hard Reset where the N bit of RFC 8538 was negotiated)
// to every established peer, which makes the peers drop our routes at once
// (graceful restart does not apply to it). A planned restart that
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
			err = fmt.Errorf("stop GoBGP: %w", err)
		}
	case <-ctx.Done():
		err = fmt.Errorf("wait for GoBGP to stop: %w", ctx.Err())
	}

	s.mu.Lock()
	s.state = lifecycleStopped
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
// announced (after normalization) replaces the path in GoBGP's RIB with an
// equal one, for which GoBGP sends no UPDATE (Update.GetChanges compares the
// new best path with the old one); the reconciler does not even call it.
func (s *Speaker) Announce(ctx context.Context, r mapping.Route) error {
	r, err := normalizeRoute(r)
	if err != nil {
		return err
	}
	path, err := buildPath(r, s.cfg.ASN)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return err
	}
	if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		return fmt.Errorf("GoBGP AddPath: %w", err)
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("path added", "prefix", r.Prefix)
	}
	return nil
}

// Withdraw withdraws the route announced for prefix, and only that one.
// Withdrawing a prefix that is not announced is a no-op.
//
// GoBGP matches a withdrawn path to the path it replaces by source (local)
// and NLRI alone (Destination.explicitWithdraw), so the path given to
// DeletePath carries the NLRI and a next hop (which GoBGP's decoding wants)
// and none of the announced attributes. (A DeletePath without a path and
// without a UUID would delete every local path of the family. One by the
// UUID that AddPath returns scans every path GoBGP holds, server.go
// DeletePath: 13ms per route at 10,000 routes against 12µs for this.)
func (s *Speaker) Withdraw(ctx context.Context, prefix netip.Prefix) error {
	if !prefix.IsValid() {
		return errors.New("invalid prefix")
	}
	prefix = prefix.Masked()
	path, err := withdrawPath(prefix)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return err
	}
	if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{
		TableType: api.TableType_GLOBAL,
		Family:    path.Family,
		Path:      path,
	}); err != nil {
		return fmt.Errorf("GoBGP DeletePath: %w", err)
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("path deleted", "prefix", prefix)
	}
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
