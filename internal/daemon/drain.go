package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
)

// drainState is the host's drain state; it is kept in the state directory
// so that a drained host stays drained across daemon restarts.
type drainState struct {
	State string    `json:"state"` // status.DrainNone, DrainDraining, DrainDrained
	Since time.Time `json:"since"`
}

const drainFile = "drain.json"

func (s drainState) reconcileDrain() reconcile.Drain {
	switch s.State {
	case status.DrainDraining:
		return reconcile.DrainShutdown
	case status.DrainDrained:
		return reconcile.DrainWithdrawn
	}
	return reconcile.DrainNone
}

// loadDrain reads the drain state from the state directory (creating the
// directory) and, for a drain that was under way, schedules its end.
func (d *Daemon) loadDrain() error {
	d.drain = drainState{State: status.DrainNone}
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(d.cfg.StateDir, drainFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read drain state: %w", err)
	}
	var s drainState
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("read drain state %s: %w (fix or remove the file)", path, err)
	}
	switch s.State {
	case status.DrainNone:
	case status.DrainDraining:
		left := time.Until(s.Since.Add(d.cfg.Drain.GracefulShutdownTime))
		if left <= 0 {
			s = drainState{State: status.DrainDrained, Since: time.Now()}
			if err := d.saveDrain(s); err != nil {
				return err
			}
		} else {
			d.drainTimer = time.NewTimer(left)
		}
	case status.DrainDrained:
	default:
		return fmt.Errorf("read drain state %s: unknown state %q (fix or remove the file)", path, s.State)
	}
	d.drain = s
	if s.State != status.DrainNone {
		d.log.Warn("host is drained: it announces "+map[string]string{
			status.DrainDraining: "its routes with GRACEFUL_SHUTDOWN, then nothing",
			status.DrainDrained:  "nothing",
		}[s.State]+" until `virtbgp undrain`", "drain", s.State, "since", s.Since)
	}
	return nil
}

// saveDrain writes the drain state atomically.
func (d *Daemon) saveDrain(s drainState) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	path := filepath.Join(d.cfg.StateDir, drainFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save drain state: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("save drain state: %w", err)
	}
	return nil
}

// setDrain saves and applies a drain state. Runs in the main loop.
func (d *Daemon) setDrain(ctx context.Context, state string) error {
	s := drainState{State: state, Since: time.Now()}
	if err := d.saveDrain(s); err != nil {
		return err
	}
	d.drain = s
	if err := d.rec.SetDrain(ctx, s.reconcileDrain()); err != nil {
		return fmt.Errorf("apply drain state %s: %w", state, err)
	}
	return nil
}

func (d *Daemon) startDrain(ctx context.Context) (string, error) {
	if d.drain.State != status.DrainNone {
		return fmt.Sprintf("already %s since %s", d.drain.State, d.drain.Since.Format(time.RFC3339)), nil
	}
	if err := d.setDrain(ctx, status.DrainDraining); err != nil {
		return "", err
	}
	t := d.cfg.Drain.GracefulShutdownTime
	d.drainTimer = time.NewTimer(t)
	d.log.Warn("draining: every route carries GRACEFUL_SHUTDOWN (65535:0)", "withdraw_in", t)
	return fmt.Sprintf("draining: every route carries GRACEFUL_SHUTDOWN (65535:0); all are withdrawn in %s", t), nil
}

// finishDrain withdraws everything at the end of the graceful-shutdown time.
func (d *Daemon) finishDrain(ctx context.Context) {
	if d.drain.State != status.DrainDraining {
		return
	}
	if err := d.setDrain(ctx, status.DrainDrained); err != nil {
		d.log.Error("finish drain", "err", err)
		return
	}
	d.log.Warn("drained: every route withdrawn; `virtbgp undrain` to serve again")
}

func (d *Daemon) undrain(ctx context.Context) (string, error) {
	if d.drain.State == status.DrainNone {
		return "not drained", nil
	}
	if d.drainTimer != nil {
		d.drainTimer.Stop()
		d.drainTimer = nil
	}
	if err := d.setDrain(ctx, status.DrainNone); err != nil {
		return "", err
	}
	d.log.Info("undrained: serving again")
	return "undrained: routes announced again", nil
}
