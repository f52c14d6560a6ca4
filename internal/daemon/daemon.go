// Package daemon wires virtbgp's parts together (libvirt adapter, BGP
// speaker, reconciler, mapping reloads, drain, control socket, status
// endpoint, systemd notifications) exactly as `virtbgp run` runs them, so
// that end-to-end tests exercise the same code as the binary.
//
// One goroutine, the main loop in Run, owns the daemon's own state: the
// mapping in force and its reload history, the drain state, and when the
// BGP peers are added. Everything else (signals, the file watcher, control
// socket requests, the status endpoint) sends it requests.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/libvirt"
	"github.com/virtbgp/virtbgp/internal/notify"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/internal/yamlutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// Options are the daemon's settings that do not come from the config file.
type Options struct {
	// Version is reported in logs and status.
	Version string
	// StopBGP stops the BGP speaker when Run ends, with a Cease
	// NOTIFICATION that makes peers drop the routes at once. `virtbgp run`
	// leaves it false when graceful restart is on: the process then ends
	// with its sessions open and the kernel closes them without a
	// NOTIFICATION, so graceful-restart peers keep the routes for the
	// restart time (a planned restart, not a withdrawal). Tests that run
	// several daemons in one process set it.
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
	metrics *status.Metrics
	started time.Time
	reqs    chan request
	watch   chan struct{} // the file watcher's hint, capacity 1

	// Owned by the main loop (Run).
	mapping       *mapping.Mapping
	generation    int
	loadedAt      time.Time
	lastReload    status.Reload
	mappingDigest string // digest of the mapping in force
	failedDigest  string // digest of the last content that failed to load
	drain         drainState
	drainTimer    *time.Timer
	peersAdded    bool
}

// New builds a daemon from a validated config and the mapping it names. It
// reads the drain state from the state directory (creating the directory).
func New(cfg *config.Config, m *mapping.Mapping, log *slog.Logger, opts Options) (*Daemon, error) {
	d := &Daemon{
		cfg:        cfg,
		opts:       opts,
		log:        log,
		reqs:       make(chan request),
		watch:      make(chan struct{}, 1),
		mapping:    m,
		generation: 1,
		loadedAt:   time.Now(),
		metrics:    status.NewMetrics(),
	}
	if digest, err := mapping.Digest(cfg.Mapping.Path); err == nil {
		d.mappingDigest = digest
	}
	d.metrics.ReloadResult(true, d.loadedAt)
	d.speaker = bgp.New(cfg.BGP, log.With("part", "bgp"))
	d.hv = libvirt.New(cfg.Libvirt.URI, log.With("part", "libvirt"))
	if err := d.loadDrain(); err != nil {
		return nil, err
	}
	d.rec = reconcile.New(reconcile.Options{
		Hypervisor:     d.hv,
		Speaker:        d.speaker,
		Log:            log.With("part", "reconcile"),
		Mapping:        m,
		Drain:          d.drain.reconcileDrain(),
		ResyncInterval: cfg.ResyncInterval,
		Observer:       d.metrics,
		Policy: reconcile.Policy{
			KeepPaused:     cfg.Policy.Paused == config.PausedKeep,
			StandbyPrepend: cfg.Policy.StandbyPrepend,
		},
	})
	return d, nil
}

// Reconciler gives access to the reconciler (tests).
func (d *Daemon) Reconciler() *reconcile.Reconciler { return d.rec }

// Speaker gives access to the BGP speaker (tests).
func (d *Daemon) Speaker() *bgp.Speaker { return d.speaker }

// request is something the main loop does for another goroutine.
type request struct {
	kind  string // "reload", "reload-mapping", "drain", "undrain", "report"
	reply chan reply
}

type reply struct {
	msg    string
	report status.Report
	err    error
}

// Run runs the daemon until ctx ends (nil) or a part fails (its error).
func (d *Daemon) Run(ctx context.Context) error {
	d.started = time.Now()

	ctl := &control.Server{Handler: handler{d}, Log: d.log.With("part", "control")}
	if err := ctl.Listen(d.cfg.Control.Socket); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer ctl.Close()

	// Graceful restart: the peers come up in restarting mode only after the
	// first sync has put the routes back into the RIB, so that a helper
	// that kept our routes gets the full set followed by End-of-RIB.
	gr := d.cfg.BGP.GracefulRestart.Enabled
	if err := d.speaker.StartWith(ctx, bgp.StartOptions{Restarting: gr, DeferPeers: true}); err != nil {
		return fmt.Errorf("start BGP speaker: %w", err)
	}
	defer d.stopSpeaker()

	var web *status.Server
	if d.cfg.Status.Listen != "" {
		web = status.NewServer(d.cfg.Status.Listen, d.Report, d.metrics, d.log.With("part", "status"))
		if err := web.Start(); err != nil {
			return err
		}
		d.log.Info("status endpoint listening", "addr", web.Addr())
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = web.Shutdown(sctx)
		}()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	running := 0
	spawn := func(name string, f func(context.Context) error) {
		running++
		go func() {
			err := f(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				err = fmt.Errorf("%s: %w", name, err)
			} else {
				err = nil
			}
			errc <- err
		}()
	}
	spawn("libvirt adapter", d.hv.Run)
	spawn("reconciler", d.rec.Run)
	spawn("control socket", ctl.Serve)
	if d.cfg.Mapping.Watch {
		path := d.cfg.Mapping.Path
		spawn("mapping watcher", func(ctx context.Context) error { return d.watchMapping(ctx, path) })
	}
	go d.opts.Notifier.Watchdog(ctx, d.healthy)

	// Peers wait for the first sync, but not for ever: after half the
	// restart time the peers would flush our routes anyway.
	peerWait := time.NewTimer(max(d.cfg.BGP.GracefulRestart.RestartTime/2, time.Second))
	defer peerWait.Stop()
	synced := d.rec.Synced()
	var failure error
loop:
	for {
		var drainC <-chan time.Time
		if d.drainTimer != nil {
			drainC = d.drainTimer.C
		}
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			running--
			if err != nil {
				failure = err
				break loop
			}
		case <-synced:
			synced = nil
			d.addPeers(ctx, "first sync done")
			d.opts.Notifier.Ready(d.statusLine())
		case <-peerWait.C:
			if !d.peersAdded {
				d.log.Warn("no full sync from libvirt yet; bringing the BGP sessions up anyway",
					"waited", max(d.cfg.BGP.GracefulRestart.RestartTime/2, time.Second))
				d.addPeers(ctx, "waited for libvirt")
				d.opts.Notifier.Ready("waiting for libvirt; " + d.statusLine())
			}
		case <-drainC:
			d.drainTimer = nil
			d.finishDrain(ctx)
		case <-d.watch:
			_, _ = d.reloadMapping(ctx, false)
		case r := <-d.reqs:
			r.reply <- d.handle(ctx, r.kind)
		}
	}
	d.opts.Notifier.Stopping()
	d.log.Info("shutting down")
	cancel()
	for ; running > 0; running-- {
		<-errc
	}
	return failure
}

func (d *Daemon) stopSpeaker() {
	if !d.opts.StopBGP && d.cfg.BGP.GracefulRestart.Enabled {
		d.log.Info("leaving BGP sessions to close with the process, without a NOTIFICATION: graceful-restart peers keep the routes for the restart time; use `virtbgp drain` to withdraw them",
			"restart_time", d.cfg.BGP.GracefulRestart.RestartTime)
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.speaker.Stop(sctx); err != nil {
		d.log.Warn("stop BGP speaker", "err", err)
	}
}

func (d *Daemon) addPeers(ctx context.Context, why string) {
	if d.peersAdded {
		return
	}
	d.peersAdded = true
	if err := d.speaker.SetPeers(ctx, d.cfg.BGP.Peers); err != nil {
		d.log.Error("add BGP peers", "err", err)
		return
	}
	d.log.Info("BGP peers added", "why", why, "peers", len(d.cfg.BGP.Peers))
}

func (d *Daemon) statusLine() string {
	vms, routes := d.mapping.Stats()
	return fmt.Sprintf("mapping generation %d (%d VMs, %d routes), drain %s", d.generation, vms, routes, d.drain.State)
}

// handle serves one request in the main loop.
func (d *Daemon) handle(ctx context.Context, kind string) reply {
	switch kind {
	case "reload":
		msg, err := d.reload(ctx)
		return reply{msg: msg, err: err}
	case "drain":
		msg, err := d.startDrain(ctx)
		return reply{msg: msg, err: err}
	case "undrain":
		msg, err := d.undrain(ctx)
		return reply{msg: msg, err: err}
	case "report":
		r, err := d.buildReport(ctx)
		return reply{report: r, err: err}
	}
	return reply{err: fmt.Errorf("unknown request %q", kind)}
}

// ask sends a request to the main loop and waits for the reply.
func (d *Daemon) ask(ctx context.Context, kind string) reply {
	r := request{kind: kind, reply: make(chan reply, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return reply{err: fmt.Errorf("%s: the daemon did not take the request: %w", kind, ctx.Err())}
	}
	select {
	case rep := <-r.reply:
		return rep
	case <-ctx.Done():
		return reply{err: fmt.Errorf("%s: no answer from the daemon: %w", kind, ctx.Err())}
	}
}

// Reload reloads the config file (peers, mapping path) and the mapping, as
// SIGHUP does. On any error what is in force stays, and the error (a
// yamlutil.ErrorList for content problems) is returned and logged.
func (d *Daemon) Reload(ctx context.Context) error { return d.ask(ctx, "reload").err }

// Report returns the daemon's status report.
func (d *Daemon) Report(ctx context.Context) (status.Report, error) {
	rep := d.ask(ctx, "report")
	return rep.report, rep.err
}

// healthy round-trips through the main loop and the reconciler, for the
// systemd watchdog.
func (d *Daemon) healthy(ctx context.Context) bool {
	_, err := d.Report(ctx)
	return err == nil
}

// handler adapts the daemon to the control socket.
type handler struct{ d *Daemon }

func (h handler) Status(ctx context.Context) (status.Report, error) { return h.d.Report(ctx) }

func (h handler) Drain(ctx context.Context) (string, error) {
	rep := h.d.ask(ctx, "drain")
	return rep.msg, rep.err
}

func (h handler) Undrain(ctx context.Context) (string, error) {
	rep := h.d.ask(ctx, "undrain")
	return rep.msg, rep.err
}

func (h handler) Reload(ctx context.Context) (string, error) {
	rep := h.d.ask(ctx, "reload")
	return rep.msg, rep.err
}

// reload is SIGHUP: the config file, then the mapping. Runs in the main loop.
func (d *Daemon) reload(ctx context.Context) (string, error) {
	d.opts.Notifier.Reloading()
	defer d.opts.Notifier.Ready(d.statusLine())
	var notes []string
	if d.cfg.File != "" {
		n, err := d.reloadConfig(ctx)
		if err != nil {
			return "", err
		}
		notes = append(notes, n...)
	}
	msg, err := d.reloadMapping(ctx, true)
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
		return nil, fmt.Errorf("config %s: %w", d.cfg.File, err)
	}
	var notes []string
	if needsRestart := restartOnly(d.cfg, nc); len(needsRestart) > 0 {
		d.log.Warn("config changes that take effect only after a restart", "keys", needsRestart)
		notes = append(notes, fmt.Sprintf("changed %v: takes effect after a restart", needsRestart))
	}
	if d.peersAdded {
		if err := d.speaker.SetPeers(ctx, nc.BGP.Peers); err != nil {
			return nil, fmt.Errorf("apply peers: %w", err)
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
	add(old.ResyncInterval != nc.ResyncInterval, "resync-interval")
	add(old.StateDir != nc.StateDir, "state-dir")
	add(old.Control != nc.Control, "control")
	add(old.Mapping != nc.Mapping, "mapping")
	return keys
}

// reloadMapping loads the mapping again and puts it in force. Unless force,
// content that is unchanged, or that already failed, is not loaded again
// (the file watcher must not retry a broken file in a loop). Runs in the
// main loop.
func (d *Daemon) reloadMapping(ctx context.Context, force bool) (string, error) {
	path := d.cfg.Mapping.Path
	digest, derr := mapping.Digest(path)
	if !force && derr == nil && digest == d.mappingDigest {
		if !d.lastReload.OK && !d.lastReload.At.IsZero() {
			// The files are back to what is in force: nothing is broken.
			d.failedDigest = ""
			d.recordReload(true, nil)
			d.log.Info("mapping files match the mapping in force again", "generation", d.generation)
		}
		return "mapping unchanged", nil
	}
	if !force && derr == nil && digest == d.failedDigest {
		return "mapping unchanged since the failed reload", nil
	}
	m, err := mapping.Load(path)
	if err != nil {
		d.failedDigest = digest
		d.recordReload(false, err)
		logProblems(d.log, "mapping reload rejected", err)
		d.log.Warn("previous mapping stays in force", "path", path, "generation", d.generation)
		return "", err
	}
	change := mapping.Diff(d.mapping, m)
	if err := d.rec.SetMapping(ctx, m); err != nil {
		return "", fmt.Errorf("put reloaded mapping in force: %w", err)
	}
	d.mapping, d.mappingDigest, d.failedDigest = m, digest, ""
	d.generation++
	d.loadedAt = time.Now()
	d.recordReload(true, nil)
	msg := fmt.Sprintf("mapping generation %d in force: %s", d.generation, change)
	d.log.Info("mapping reloaded", "generation", d.generation, "change", change.String())
	return msg, nil
}

func (d *Daemon) recordReload(ok bool, err error) {
	now := time.Now()
	d.lastReload = status.Reload{At: now, OK: ok}
	if err != nil {
		if list := yamlutil.Errors(err); len(list) > 0 {
			for _, e := range list {
				d.lastReload.Errors = append(d.lastReload.Errors, e.Error())
			}
		} else {
			d.lastReload.Errors = []string{err.Error()}
		}
	}
	d.metrics.ReloadResult(ok, now)
}

func logProblems(log *slog.Logger, msg string, err error) {
	if list := yamlutil.Errors(err); len(list) > 0 {
		for _, e := range list {
			log.Error(msg, "problem", e.Error())
		}
		return
	}
	log.Error(msg, "err", err)
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}
