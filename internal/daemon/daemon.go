// Package daemon wires virtbgp's parts together (libvirt adapter, BGP
// speaker, reconciler, mapping reloads, drain, control socket, status
// endpoint, systemd notifications) exactly as `virtbgp run` runs them, so
// that end-to-end tests exercise the same code as the binary.
//
// One goroutine, the main loop in Run, owns the daemon's own state: the
// config in force, the mapping's reload history, the drain record and its
// timer, and when the BGP peers are added. The mapping and the drain state
// in force are the reconciler's: the main loop sets them and asks for them.
// Everything else (signals, the file watcher, control socket requests, the
// status endpoint, the systemd watchdog) sends the main loop requests.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/health"
	"github.com/virtbgp/virtbgp/internal/libvirt"
	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/notify"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// Options are the daemon's settings that do not come from the config file.
type Options struct {
	// Version is reported in logs and status, Revision (the commit
	// virtbgp was built from) in status.
	Version  string
	Revision string
	// StopBGP stops the BGP speaker when Run ends, with a Cease
	// NOTIFICATION (a Hard Reset where RFC 8538 is negotiated) that makes
	// peers drop the routes at once. `virtbgp run` leaves it false when
	// graceful restart is on: the process then ends with its sessions open
	// and the kernel closes them without a NOTIFICATION, so graceful-restart
	// peers keep the routes for the restart time, and LLGR helpers for the
	// long-lived stale time after it (a planned restart, not a
	// withdrawal). Tests that run several daemons in one process set it.
	StopBGP bool
	// Notifier sends systemd notifications (nil: none).
	Notifier *notify.Notifier
}

// Daemon is one virtbgp.
type Daemon struct {
	cfg     *config.Config
	opts    Options
	log     *slog.Logger
	speaker *bgp.Speaker
	hv      *libvirt.Adapter
	rec     *reconcile.Reconciler
	health  *health.Monitor // the health checks (internal/health)
	metrics *status.Metrics
	started time.Time
	reqs    chan func(context.Context) // run by the main loop

	// Set by New, read-only after.
	mapPath            string // mapping.path
	mapMax             int64  // mapping.max-bytes
	maxWithdrawPercent int    // mapping.max-withdraw-percent
	// load reads and validates the mapping (mapping.LoadMax; tests
	// replace it).
	load func(path string, maxBytes int64) (*mapping.Mapping, error)
	// loadMu makes mapping loads, which run outside the main loop, one at
	// a time (see mapload.go).
	loadMu sync.Mutex
	// life lasts as long as the daemon (until Run ends): a reload asked
	// for by a request with a shorter deadline (the control socket's)
	// still finishes and is applied.
	life    context.Context
	endLife context.CancelFunc

	// origins caches where the mapping's entries are, for the reports,
	// which are built outside the main loop (report.go).
	origins atomic.Pointer[origins]

	// Owned by the main loop (Run).
	//
	// The generation counts the mapping contents put in force:
	// contentDigest (what the mapping says) decides whether a reload is a
	// new one, and is what status and metrics export. fileDigest and
	// failedDigest are mapping.Digest of the files' bytes, to skip reading
	// files that did not change at all.
	generation    int
	loadedAt      time.Time
	lastReload    status.Reload
	contentDigest string // contentDigest of the mapping in force
	fileDigest    string // mapping.Digest of the files in force
	failedDigest  string // mapping.Digest of the last files that failed to load
	drain         *drainer
	manual        *manualRoutes
	maint         *maintenanceSet
	peersAdded    bool
	held          heldReload   // the reload held by the mass-withdraw guard
	watchState    status.Watch // as the watcher last reported it
}

// New builds a daemon from a validated config and the mapping it names. It
// reads the drain state from the state directory (creating the directory).
func New(cfg *config.Config, m *mapping.Mapping, log *slog.Logger, opts Options) (*Daemon, error) {
	if probs := UnsafeDirs(cfg); len(probs) > 0 {
		return nil, fmt.Errorf("refusing to start: %s", strings.Join(probs, "; "))
	}
	d := &Daemon{
		cfg:        cfg,
		opts:       opts,
		log:        log,
		reqs:       make(chan func(context.Context)),
		generation: 1,

		mapPath:            cfg.Mapping.Path,
		mapMax:             cfg.Mapping.MaxBytes,
		maxWithdrawPercent: cfg.Mapping.MaxWithdrawPercent,
		held:               heldReload{after: cfg.Mapping.WithdrawConfirmAfter},
		load:               mapping.LoadMax,
		watchState:         status.Watch{State: "off"},
		loadedAt:           time.Now(),
		metrics:            status.NewMetrics(),
	}
	d.life, d.endLife = context.WithCancel(context.Background())
	if cfg.Mapping.Path != "" {
		if digest, err := mapping.DigestMax(cfg.Mapping.Path, cfg.Mapping.MaxBytes); err == nil {
			d.fileDigest = digest
		}
	}
	d.contentDigest = contentDigest(m)
	d.metrics.ReloadResult(true, d.loadedAt)
	d.speaker = bgp.New(cfg.BGP, log.With("part", "bgp"))
	d.hv = libvirt.New(cfg.Libvirt.URI, log.With("part", "libvirt"), metadataOption(cfg.Mapping),
		libvirt.WithAgentEvents(func(uuid string) { d.health.AgentEvent(uuid) }))
	healthMetrics := health.NewMetrics()
	d.health = health.New(health.Options{Log: log.With("part", "health"), Agent: d.hv, Observer: healthMetrics})
	healthMetrics.SetMonitor(d.health)
	d.metrics.Registry().MustRegister(healthMetrics)
	d.drain = &drainer{log: log}
	drain, err := d.drain.load(cfg.StateDir, cfg.Drain.GracefulShutdownTime)
	if err != nil {
		return nil, err
	}
	var manualRoutes []mapping.Route
	d.manual, manualRoutes, err = loadManual(cfg.StateDir, cfg.API.Allow, log.With("part", "api"))
	if err != nil {
		return nil, err
	}
	d.manual.onChange = d.metrics.ManualRoutes
	d.metrics.ManualRoutes(len(manualRoutes), 0)
	var maint reconcile.Maintenance
	d.maint, maint, err = loadMaintenance(cfg.StateDir, log.With("part", "api"))
	if err != nil {
		return nil, err
	}
	d.maint.onChange = d.metrics.Maintenance
	d.metrics.Maintenance(len(maint), "", 0)
	d.rec = reconcile.New(reconcile.Options{
		Hypervisor:     d.hv,
		Speaker:        d.speaker,
		Log:            log.With("part", "reconcile"),
		Mapping:        m,
		Drain:          drain,
		Manual:         manualRoutes,
		Maintenance:    maint,
		ResyncInterval: cfg.ResyncInterval,
		Observer:       d.metrics,
		Health:         d.health,
		Policy: reconcile.Policy{
			KeepPaused:     cfg.Policy.Paused == config.PausedKeep,
			StandbyPrepend: cfg.Policy.StandbyPrepend,
			Trust:          trust(cfg.Mapping, cfg.API),
		},
	})
	d.drain.rec = d.rec
	return d, nil
}

// Reconciler gives access to the reconciler (tests).
func (d *Daemon) Reconciler() *reconcile.Reconciler { return d.rec }

// Run runs the daemon until ctx ends (nil) or a part fails (its error).
func (d *Daemon) Run(ctx context.Context) error {
	d.started = time.Now()
	defer d.endLife()
	defer context.AfterFunc(ctx, d.endLife)()

	ctl := &control.Server{Handler: handler{d}, Log: d.log.With("part", "control"),
		WriteRate: d.cfg.API.WriteRate, TLS: d.cfg.API.TLS.Config}
	if d.cfg.Control.ReadGroup != "" {
		gid := d.cfg.Control.ReadGID
		ctl.ReadGroup = &gid
	}
	for _, t := range d.cfg.API.Tokens {
		ctl.Tokens = append(ctl.Tokens, control.Token{Name: t.Name, Secret: t.Secret, Write: t.Write})
	}
	if err := ctl.Listen(d.cfg.Control.Socket); err != nil {
		return err // it names the socket
	}
	defer ctl.Close()
	if d.cfg.API.Listen != "" {
		if err := ctl.ListenTCP(d.cfg.API.Listen); err != nil {
			return err // it names the address
		}
	}

	// Graceful restart: the peers come up in restarting mode only after the
	// first sync has put the routes back into the RIB, so that a helper
	// that kept our routes gets the full set followed by End-of-RIB.
	gr := d.cfg.BGP.GracefulRestart.Enabled
	if err := d.speaker.StartWith(ctx, bgp.StartOptions{Restarting: gr, DeferPeers: true}); err != nil {
		return fmt.Errorf("start BGP speaker: %w", err)
	}
	defer d.stopSpeaker()

	if d.cfg.Status.Listen != "" {
		web := status.NewServer(d.cfg.Status.Listen, d.Report, d.metrics, d.log.With("part", "status"))
		web.Health = d.Alive
		if err := web.Start(); err != nil {
			return err // it says what failed
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = web.Shutdown(sctx)
		}()
	}

	// The parts run until ctx ends or one of them fails, which ends the
	// others. Each part's errors say which part failed.
	g, gctx := errgroup.WithContext(ctx)
	part := func(run func(context.Context) error) {
		g.Go(func() error {
			if err := run(gctx); !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		})
	}
	part(d.hv.Run)
	part(d.health.Run)
	part(d.rec.Run)
	part(ctl.Serve)
	if d.cfg.Mapping.Watch && d.cfg.Mapping.Path != "" {
		path := d.cfg.Mapping.Path
		part(func(ctx context.Context) error { return d.watchMapping(ctx, path) })
	}
	part(func(ctx context.Context) error {
		d.opts.Notifier.Watchdog(ctx, d.healthy)
		return nil
	})
	d.loop(gctx)
	d.opts.Notifier.Stopping()
	d.log.Info("shutting down")
	return g.Wait()
}

// loop is the main loop: it serves requests and timers until ctx ends.
func (d *Daemon) loop(ctx context.Context) {
	wait := peerWait(d.cfg.BGP.GracefulRestart)
	peerTimer := time.NewTimer(wait)
	defer peerTimer.Stop()
	synced := d.rec.Synced()
	for {
		select {
		case <-ctx.Done():
			return
		case <-synced:
			synced = nil
			d.addPeers(ctx, "first sync done")
			d.ready(ctx, "")
		case <-peerTimer.C:
			if !d.peersAdded {
				d.log.Warn("no full sync from libvirt yet; bringing the BGP sessions up anyway", "waited", wait)
				d.addPeers(ctx, "waited for libvirt")
				d.ready(ctx, "waiting for libvirt; ")
			}
		case <-d.drain.timerC():
			d.drain.finish(ctx)
		case <-d.held.C():
			d.heldExpired(ctx)
		case <-d.manual.timerC():
			d.manual.expire(ctx, d.rec)
		case <-d.maint.timerC():
			d.maint.expire(ctx, d.rec)
		case run := <-d.reqs:
			run(ctx)
		}
	}
}

// maxPeerWait bounds peerWait: READY=1 comes with the peers, well within
// the unit's TimeoutStartSec=2min (systemd/virtbgp.service).
const maxPeerWait = time.Minute

// peerWait is how long the peers wait for the first full sync from libvirt
// before they are brought up anyway (with what the reconciler has, maybe
// nothing, which makes the peers flush what they kept): half the time the
// peers keep our routes, the restart time and, at peers that do LLGR, the
// long-lived stale time, at least 1s and at most maxPeerWait. Waiting
// longer for libvirt costs nothing: without its state nothing is announced.
func peerWait(gr config.GracefulRestart) time.Duration {
	keep := gr.RestartTime + gr.LongLivedStaleTime
	return min(max(keep/2, time.Second), maxPeerWait)
}

func (d *Daemon) stopSpeaker() {
	if gr := d.cfg.BGP.GracefulRestart; !d.opts.StopBGP && gr.Enabled {
		d.log.Info("leaving BGP sessions to close with the process, without a NOTIFICATION",
			"reason", "graceful-restart peers keep the routes for the restart time, then LLGR helpers for the long-lived stale time; `virtbgp drain` withdraws them",
			"restart_time", gr.RestartTime, "long_lived_stale_time", gr.LongLivedStaleTime)
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.speaker.Stop(sctx); err != nil {
		d.log.Warn("cannot stop the BGP speaker", "error", err)
	}
}

func (d *Daemon) addPeers(ctx context.Context, reason string) {
	if d.peersAdded {
		return
	}
	d.peersAdded = true
	if err := d.speaker.SetPeers(ctx, d.cfg.BGP.Peers); err != nil {
		d.log.Error("cannot add the BGP peers", "error", err)
		return
	}
	d.log.Info("BGP peers added", "reason", reason, "peers", len(d.cfg.BGP.Peers))
}

// ready tells systemd that start-up or a reload is complete, with a status
// line: note, then the mapping and the drain in force, as the reconciler
// has them.
func (d *Daemon) ready(ctx context.Context, note string) {
	if !d.opts.Notifier.Enabled() {
		return
	}
	snap, err := d.rec.Snapshot(ctx)
	if err != nil {
		d.opts.Notifier.Ready(fmt.Sprintf("%smapping generation %d", note, d.generation))
		return
	}
	vms, routes := snap.Mapping.Stats()
	d.opts.Notifier.Ready(fmt.Sprintf("%smapping generation %d (%d VMs, %d routes), drain %s",
		note, d.generation, vms, routes, snap.Drain))
}

// call runs fn in the main loop, which owns the daemon's state, and returns
// its result; what names the request in errors.
func call[T any](ctx context.Context, d *Daemon, what string, fn func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	run := func(ctx context.Context) {
		v, err := fn(ctx)
		done <- result{v, err}
	}
	var zero T
	select {
	case d.reqs <- run:
	case <-ctx.Done():
		return zero, fmt.Errorf("%s: the daemon did not take the request: %w", what, ctx.Err())
	}
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("%s: no answer from the daemon: %w", what, ctx.Err())
	}
}

// Reload reloads the config file (peers, mapping path) and the mapping, as
// SIGHUP does. On any error what is in force stays, and the error (a
// fileerr.ErrorList for content problems) is returned and logged.
func (d *Daemon) Reload(ctx context.Context) error {
	_, err := d.reload(ctx, false)
	return err
}

// ReloadConfirmed is Reload that also applies a mapping that withdraws more
// of the announced routes than mapping.max-withdraw-percent allows
// (`virtbgp reload --force`).
func (d *Daemon) ReloadConfirmed(ctx context.Context) (string, error) {
	return d.reload(ctx, true)
}

// Report returns the daemon's status report.
func (d *Daemon) Report(ctx context.Context) (status.Report, error) {
	own, err := call(ctx, d, "report", d.ownFields)
	if err != nil {
		return status.Report{}, err
	}
	return d.buildReport(ctx, own)
}

// Alive round-trips through the main loop and the reconciler's loop,
// without building a report: the status endpoint's /healthz.
func (d *Daemon) Alive(ctx context.Context) error {
	if _, err := call(ctx, d, "health check", func(context.Context) (struct{}, error) { return struct{}{}, nil }); err != nil {
		return err
	}
	if err := d.rec.Alive(ctx); err != nil {
		return fmt.Errorf("health check: the reconciler: %w", err)
	}
	return nil
}

// healthy is Alive for the systemd watchdog.
func (d *Daemon) healthy(ctx context.Context) bool { return d.Alive(ctx) == nil }

// handler adapts the daemon to the control socket.
type handler struct{ d *Daemon }

func (h handler) Status(ctx context.Context) (status.Report, error) { return h.d.Report(ctx) }

func (h handler) Drain(ctx context.Context) (string, error) {
	return call(ctx, h.d, "drain", func(ctx context.Context) (string, error) {
		return h.d.drain.start(ctx, h.d.cfg.Drain.GracefulShutdownTime)
	})
}

func (h handler) Undrain(ctx context.Context) (string, error) {
	return call(ctx, h.d, "undrain", h.d.drain.undrain)
}

func (h handler) Reload(ctx context.Context) (string, error) {
	return h.reloadAnswer(ctx, false)
}

// reloadAnswer is Reload and ReloadForce for the API: a refused config or
// mapping, or a held one, is a 422, and the old ones stay in force.
func (h handler) reloadAnswer(ctx context.Context, confirm bool) (string, error) {
	msg, err := h.d.reload(ctx, confirm)
	if err != nil && ctx.Err() == nil {
		// The new config or mapping is refused; the old one stays.
		return "", &control.Error{Status: http.StatusUnprocessableEntity, Message: err.Error()}
	}
	return msg, err
}

func (h handler) ManualRoutes(ctx context.Context) ([]manual.Route, error) {
	return call(ctx, h.d, "manual routes", func(context.Context) ([]manual.Route, error) { return h.d.manual.list(), nil })
}

func (h handler) Announce(ctx context.Context, who string, req manual.Request) (manual.Route, error) {
	return call(ctx, h.d, "announce", func(ctx context.Context) (manual.Route, error) { return h.d.announce(ctx, who, req) })
}

func (h handler) Withdraw(ctx context.Context, who, prefix string) (manual.Route, error) {
	return call(ctx, h.d, "withdraw", func(ctx context.Context) (manual.Route, error) { return h.d.withdraw(ctx, who, prefix) })
}

func (h handler) Maintenance(ctx context.Context) ([]maintenance.Entry, error) {
	return call(ctx, h.d, "maintenance", func(context.Context) ([]maintenance.Entry, error) { return h.d.maint.list(), nil })
}

func (h handler) MaintenanceOn(ctx context.Context, who, domain string, req maintenance.Request) (maintenance.Entry, error) {
	return call(ctx, h.d, "maintenance on", func(ctx context.Context) (maintenance.Entry, error) {
		return h.d.maintenanceOn(ctx, who, domain, req)
	})
}

func (h handler) MaintenanceOff(ctx context.Context, who, domain, ip string) ([]maintenance.Entry, error) {
	return call(ctx, h.d, "maintenance off", func(ctx context.Context) ([]maintenance.Entry, error) {
		return h.d.maintenanceOff(ctx, who, domain, ip)
	})
}

func (h handler) ReloadForce(ctx context.Context) (string, error) {
	return h.reloadAnswer(ctx, true)
}

// reload is SIGHUP: the config file, then the mapping; confirm applies a
// mapping that the mass-withdraw guard would hold. The config is read in
// the main loop (it is small), the mapping outside it (loadMapping).
func (d *Daemon) reload(ctx context.Context, confirm bool) (string, error) {
	d.opts.Notifier.Reloading()
	defer func() {
		_, _ = call(ctx, d, "ready", func(ctx context.Context) (struct{}, error) { d.ready(ctx, ""); return struct{}{}, nil })
	}()
	var notes []string
	if d.cfg.File != "" {
		n, err := call(ctx, d, "reload config", d.reloadConfig)
		if err != nil {
			return "", err
		}
		notes = append(notes, n...)
	}
	msg, err := d.loadMapping(d.life, loadHow{reread: true, confirm: confirm})
	if err != nil {
		return "", err
	}
	for _, n := range notes {
		msg += "; " + n
	}
	return msg, nil
}

// reloadConfig reads the config file again and applies what can change at
// run time: the peers (only the sessions that changed are touched) and the
// drain time. Other changes are reported as needing a restart.
func (d *Daemon) reloadConfig(ctx context.Context) ([]string, error) {
	nc, err := config.Load(d.cfg.File)
	if err != nil {
		d.recordReload(false, err)
		logProblems(d.log, "config reload rejected", err)
		return nil, err // it names the file
	}
	for _, w := range nc.Warnings {
		d.log.Warn("config warning", "problem", w.Error())
	}
	var notes []string
	if needsRestart := restartOnly(d.cfg, nc); len(needsRestart) > 0 {
		d.log.Warn("config changes that take effect only after a restart", "keys", needsRestart)
		notes = append(notes, fmt.Sprintf("changed %v: takes effect after a restart", needsRestart))
	}
	if d.peersAdded {
		if err := d.speaker.SetPeers(ctx, nc.BGP.Peers); err != nil {
			return nil, fmt.Errorf("apply the reloaded peers: %w", err)
		}
	}
	d.cfg.BGP.Peers = nc.BGP.Peers
	d.cfg.Drain = nc.Drain
	return notes, nil
}

// restartOnly names the keys that differ between two configs and cannot
// change while the daemon runs.
func restartOnly(old, nc *config.Config) []string {
	var keys []string
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(old.Libvirt != nc.Libvirt, "libvirt")
	add(old.BGP.ASN != nc.BGP.ASN, "bgp.asn")
	add(old.BGP.RouterID != nc.BGP.RouterID, "bgp.router-id")
	add(old.BGP.ListenPort != nc.BGP.ListenPort, "bgp.listen-port")
	add(old.BGP.GracefulRestart != nc.BGP.GracefulRestart, "bgp.graceful-restart")
	add(old.Status != nc.Status, "status")
	add(old.Policy != nc.Policy, "policy")
	add(!reflect.DeepEqual(old.Routes, nc.Routes), "routes")
	add(old.ResyncInterval != nc.ResyncInterval, "resync-interval")
	add(old.StateDir != nc.StateDir, "state-dir")
	add(old.Control != nc.Control, "control")
	oa, na := old.API, nc.API
	oa.TLS.Config, na.TLS.Config = nil, nil
	add(!reflect.DeepEqual(oa, na), "api")
	add(old.Mapping.Path != nc.Mapping.Path || old.Mapping.Watch != nc.Mapping.Watch, "mapping")
	add(!reflect.DeepEqual(old.Mapping.Metadata, nc.Mapping.Metadata), "mapping.metadata")
	add(!reflect.DeepEqual(old.Mapping.Nova, nc.Mapping.Nova), "mapping.nova")
	return keys
}

// logProblems logs each problem of err, at most status.MaxReloadErrors of
// them (a broken mapping of a million entries must not make a million log
// lines), then how many more there are.
func logProblems(log *slog.Logger, msg string, err error) {
	if list := fileerr.Errors(err); len(list) > 0 {
		for i, e := range list {
			if i == status.MaxReloadErrors {
				log.Error(msg, "more_problems", len(list)-i)
				break
			}
			log.Error(msg, "problem", fileerr.Clip(e.Error(), maxErrorText))
		}
		return
	}
	log.Error(msg, "error", fileerr.Clip(err.Error(), maxErrorText))
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}

// metadataOption makes the libvirt adapter read the metadata elements that
// the config enables.
func metadataOption(m config.Mapping) libvirt.Option {
	return libvirt.WithMetadata(libvirt.MetadataConfig{
		Virtbgp:     m.Metadata.Enabled,
		Options:     mapping.MetadataOptions{Defaults: m.Metadata.Defaults, Health: m.Metadata.Health.Defaults},
		Nova:        m.Nova.Enabled,
		NovaOptions: m.Nova.Options,
	})
}

// trust is what the reconciler lets each enabled source claim; a disabled
// source is allowed nothing.
func trust(m config.Mapping, api config.API) reconcile.Trust {
	t := reconcile.Trust{Manual: api.Allow}
	if m.Metadata.Enabled {
		t.Metadata = m.Metadata.Allow
		t.MetadataHealth = m.Metadata.Health
	}
	if m.Nova.Enabled {
		t.Nova = m.Nova.Allow
	}
	return t
}
