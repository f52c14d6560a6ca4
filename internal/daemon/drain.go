package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/safefile"
)

// drainer is the daemon's part of the host's drain: the record in the state
// directory, which keeps a drained host drained across restarts, and the
// timer that ends a drain. The drain state in force is the reconciler's:
// the drainer asks it, and sets it. Its methods run in the main loop.
type drainer struct {
	rec   drainTarget
	log   *slog.Logger
	dir   string      // the state directory
	path  string      // drain.json in it, for messages
	since time.Time   // when the state in force began (zero: never drained)
	timer *time.Timer // while draining: the end of the graceful-shutdown time
}

// drainTarget is the reconciler, as far as the drain goes.
type drainTarget interface {
	SetDrain(ctx context.Context, d reconcile.Drain) error
	Snapshot(ctx context.Context) (reconcile.Snapshot, error)
}

// drainRecord is drain.json: {"state":"draining","since":"2026-..."}.
type drainRecord struct {
	State reconcile.Drain `json:"state"`
	Since time.Time       `json:"since"`
}

const drainFile = "drain.json"

// load reads the drain record from stateDir (creating the directory) and
// returns the state to start in. A drain that was under way ends grace
// after it began: at once if that time has passed (the host starts
// drained), else when the timer fires.
func (dr *drainer) load(stateDir string, grace time.Duration) (reconcile.Drain, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return 0, fmt.Errorf("create the state directory: %w", err)
	}
	dr.dir = stateDir
	dr.path = filepath.Join(stateDir, drainFile)
	data, err := dr.read()
	if errors.Is(err, fs.ErrNotExist) {
		return reconcile.DrainNone, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the drain state: %w", err)
	}
	var rec drainRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return 0, fmt.Errorf("read the drain state %s: %w (fix or remove the file)", dr.path, err)
	}
	if rec.State == reconcile.DrainDraining {
		if left := time.Until(rec.Since.Add(grace)); left > 0 {
			dr.timer = time.NewTimer(left)
		} else {
			rec = drainRecord{State: reconcile.DrainDrained, Since: time.Now()}
			if err := dr.save(rec); err != nil {
				return 0, err
			}
		}
	}
	dr.since = rec.Since
	switch rec.State {
	case reconcile.DrainDraining:
		dr.log.Warn("host is draining: its routes carry GRACEFUL_SHUTDOWN, then are withdrawn, until `virtbgp undrain`",
			"drain", rec.State, "since", rec.Since, "withdraw_at", rec.Since.Add(grace))
	case reconcile.DrainDrained:
		dr.log.Warn("host is drained: it announces nothing until `virtbgp undrain`", "drain", rec.State, "since", rec.Since)
	}
	return rec.State, nil
}

// maxDrainFile bounds how much of drain.json is read.
const maxDrainFile = 4096

// read reads drain.json: a regular file inside the state directory (nothing
// outside it is read), and no more than maxDrainFile bytes.
func (dr *drainer) read() ([]byte, error) {
	return safefile.ReadInDir(dr.dir, drainFile, maxDrainFile)
}

// save writes the drain record atomically (safefile.WriteInDir): never
// through a symbolic link or into a file that was already there, whatever
// another user may have put at the temporary name.
func (dr *drainer) save(rec drainRecord) error {
	data, err := json.Marshal(rec)
	if err == nil {
		err = safefile.WriteInDir(dr.dir, drainFile, append(data, '\n'), 0o600)
	}
	if err != nil {
		return fmt.Errorf("save the drain state: %w", err)
	}
	return nil
}

// state is the drain state in force.
func (dr *drainer) state(ctx context.Context) (reconcile.Drain, error) {
	snap, err := dr.rec.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the drain state in force: %w", err)
	}
	return snap.Drain, nil
}

// set saves and applies a drain state.
func (dr *drainer) set(ctx context.Context, state reconcile.Drain) error {
	rec := drainRecord{State: state, Since: time.Now()}
	if err := dr.save(rec); err != nil {
		return err
	}
	dr.since = rec.Since
	if err := dr.rec.SetDrain(ctx, state); err != nil {
		return fmt.Errorf("put drain state %s in force: %w", state, err)
	}
	return nil
}

// timerC delivers the end of the graceful-shutdown time of a drain under
// way; nil (never) otherwise.
func (dr *drainer) timerC() <-chan time.Time {
	if dr.timer == nil {
		return nil
	}
	return dr.timer.C
}

func (dr *drainer) stopTimer() {
	if dr.timer != nil {
		dr.timer.Stop()
		dr.timer = nil
	}
}

// start drains the host: every route carries GRACEFUL_SHUTDOWN, and after
// grace all are withdrawn (finish).
func (dr *drainer) start(ctx context.Context, grace time.Duration) (string, error) {
	cur, err := dr.state(ctx)
	if err != nil {
		return "", err
	}
	if cur != reconcile.DrainNone {
		return fmt.Sprintf("already %s since %s", cur, dr.since.Format(time.RFC3339)), nil
	}
	if err := dr.set(ctx, reconcile.DrainDraining); err != nil {
		return "", err
	}
	dr.timer = time.NewTimer(grace)
	dr.log.Warn("draining: every route carries GRACEFUL_SHUTDOWN (65535:0)", "withdraw_in", grace)
	return fmt.Sprintf("draining: every route carries GRACEFUL_SHUTDOWN (65535:0); all are withdrawn in %s", grace), nil
}

// finish withdraws everything at the end of the graceful-shutdown time.
func (dr *drainer) finish(ctx context.Context) {
	dr.timer = nil
	if cur, err := dr.state(ctx); err != nil || cur != reconcile.DrainDraining {
		return // the main loop is stopping, or an undrain came first
	}
	if err := dr.set(ctx, reconcile.DrainDrained); err != nil {
		dr.log.Error("cannot finish the drain", "error", err)
		return
	}
	dr.log.Warn("drained: every route withdrawn; `virtbgp undrain` to serve again")
}

// undrain serves again: routes are announced as the mapping says.
func (dr *drainer) undrain(ctx context.Context) (string, error) {
	cur, err := dr.state(ctx)
	if err != nil {
		return "", err
	}
	if cur == reconcile.DrainNone {
		return "not drained", nil
	}
	dr.stopTimer()
	if err := dr.set(ctx, reconcile.DrainNone); err != nil {
		return "", err
	}
	dr.log.Info("undrained: serving again")
	return "undrained: routes announced again", nil
}
