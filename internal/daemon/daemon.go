// Package daemon wires virtbgp's parts together (libvirt adapter, BGP
// speaker, reconciler, mapping reloads) exactly as `virtbgp run` runs them,
// so that end-to-end tests exercise the same code as the binary.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/libvirt"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/yamlutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// Daemon is one running virtbgp.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	speaker *bgp.Speaker
	hv      *libvirt.Adapter
	rec     *reconcile.Reconciler
	reload  chan chan error
}

// New builds a daemon from a validated config and mapping.
func New(cfg *config.Config, m *mapping.Mapping, log *slog.Logger) *Daemon {
	d := &Daemon{cfg: cfg, log: log, reload: make(chan chan error)}
	d.speaker = bgp.New(cfg.BGP, log.With("part", "bgp"))
	d.hv = libvirt.New(cfg.Libvirt.URI, log.With("part", "libvirt"))
	d.rec = reconcile.New(reconcile.Options{
		Hypervisor:     d.hv,
		Speaker:        d.speaker,
		Log:            log.With("part", "reconcile"),
		Mapping:        m,
		ResyncInterval: cfg.ResyncInterval,
		Policy: reconcile.Policy{
			KeepPaused:     cfg.Policy.Paused == config.PausedKeep,
			StandbyPrepend: cfg.Policy.StandbyPrepend,
		},
	})
	return d
}

// Reconciler gives access to the reconciler (status, tests).
func (d *Daemon) Reconciler() *reconcile.Reconciler { return d.rec }

// Speaker gives access to the BGP speaker (status, tests).
func (d *Daemon) Speaker() *bgp.Speaker { return d.speaker }

// Run starts the speaker, the libvirt adapter and the reconciler and blocks
// until ctx ends (nil) or a part fails (its error).
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.speaker.Start(ctx); err != nil {
		return fmt.Errorf("start BGP speaker: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.speaker.Stop(sctx); err != nil {
			d.log.Warn("stop BGP speaker", "err", err)
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- fmt.Errorf("libvirt adapter: %w", d.hv.Run(ctx)) }()
	go func() { errc <- fmt.Errorf("reconciler: %w", d.rec.Run(ctx)) }()
	for {
		select {
		case <-ctx.Done():
			d.log.Info("shutting down")
			<-errc
			<-errc
			return nil
		case err := <-errc:
			cancel()
			<-errc
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case reply := <-d.reload:
			reply <- d.reloadMapping(ctx)
		}
	}
}

// Reload loads and validates the mapping again and puts it in force. On any
// error the mapping in force stays and the error (a yamlutil.ErrorList for
// content problems) is returned and logged.
func (d *Daemon) Reload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case d.reload <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Daemon) reloadMapping(ctx context.Context) error {
	path := d.cfg.Mapping.Path
	m, err := mapping.Load(path)
	if err != nil {
		if list := yamlutil.Errors(err); len(list) > 0 {
			for _, e := range list {
				d.log.Error("mapping reload rejected", "problem", e.Error())
			}
		} else {
			d.log.Error("mapping reload rejected", "err", err)
		}
		d.log.Warn("previous mapping stays in force", "path", path)
		return err
	}
	if err := d.rec.SetMapping(ctx, m); err != nil {
		return fmt.Errorf("put reloaded mapping in force: %w", err)
	}
	return nil
}
