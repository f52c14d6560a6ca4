package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// Loading the mapping off the main loop
//
// Reading and validating a mapping takes time in proportion to its size
// (seconds for a million entries) and memory. The main loop, which also
// answers status and the systemd watchdog, must not wait for it: loadMapping
// runs in the goroutine that asks for the reload (the watcher, a control
// request, SIGHUP). It asks the main loop whether the files' digest is new,
// reads and validates them outside, and hands the main loop only a finished
// mapping (or the errors) to decide on and put in force. loadMu makes the
// loads one at a time, so that their results reach the main loop in order.

// ErrReloadHeld is returned (wrapped, with the counts) by a reload that
// would withdraw more than mapping.max-withdraw-percent of the announced
// routes: it is held until confirmed.
var ErrReloadHeld = errors.New("mapping reload held: it would withdraw too many of the announced routes")

// loadHow says how loadMapping treats files the main loop knows.
type loadHow struct {
	// reread loads files that are unchanged or already failed (SIGHUP
	// and the control socket's reload; the watcher does not).
	reread bool
	// confirm applies the mapping even if it withdraws more than the guard
	// allows (`virtbgp reload --force`).
	confirm bool
	// onlyDigest, if set, loads only files of this digest (the held
	// reload's files, when its confirmation time has passed).
	onlyDigest string
}

// bigLoad is how long a load may take before loadMapping returns its
// garbage to the system at once (debug.FreeOSMemory) rather than leave the
// heap at its peak.
const bigLoad = 100 * time.Millisecond

// loadMapping loads the mapping file and puts it in force, off the main
// loop (see above). It returns the operator's message, or why not.
func (d *Daemon) loadMapping(ctx context.Context, how loadHow) (string, error) {
	path := d.mapPath
	if path == "" {
		return "no mapping file: the routes come from the domains' metadata", nil
	}
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	digest, derr := mapping.DigestMax(path, d.mapMax)
	if how.onlyDigest != "" && digest != how.onlyDigest {
		return "the held reload's files changed: not applied", nil
	}
	var limits mapping.Limits
	skip, err := call(ctx, d, "reload mapping", func(context.Context) (string, error) {
		limits = d.cfg.Routes // the config is the main loop's
		return d.skipLoad(digest, derr == nil, how), nil
	})
	if err != nil || skip != "" {
		return skip, err
	}
	start := time.Now()
	m, lerr := d.load(path, d.mapMax)
	if lerr == nil {
		lerr = m.CheckLimits(limits)
	}
	var content string
	if lerr == nil {
		content = contentDigest(m) // pure, and as slow as the mapping is big
	}
	if time.Since(start) > bigLoad {
		debug.FreeOSMemory()
	}
	return call(ctx, d, "reload mapping", func(ctx context.Context) (string, error) {
		return d.applyMapping(ctx, m, content, lerr, digest, how)
	})
}

// skipLoad decides in the main loop whether files of this digest need to
// be loaded: "" if so, else the message of why not. ok is false when the
// digest could not be read (the load reports why).
func (d *Daemon) skipLoad(digest string, ok bool, how loadHow) string {
	if how.reread || !ok {
		return ""
	}
	switch digest {
	case d.fileDigest:
		if d.held.cur != nil {
			// Back to the files in force: nothing to confirm any more.
			d.log.Info("mapping files match the mapping in force again; the held reload is dropped", "generation", d.generation)
			d.dropHeld()
		}
		if !d.lastReload.OK && !d.lastReload.At.IsZero() {
			// The files are back to what is in force: nothing is broken.
			d.failedDigest = ""
			d.recordReload(true, nil)
			d.log.Info("mapping files match the mapping in force again", "generation", d.generation)
		}
		return "mapping unchanged"
	case d.failedDigest:
		return "mapping unchanged since the failed reload"
	}
	if h := d.held.cur; h != nil && digest == h.Digest && !how.confirm {
		return heldMessage(h)
	}
	return ""
}

// applyMapping decides in the main loop on a loaded mapping (or its load
// error) and puts it in force.
// content is m's contentDigest.
func (d *Daemon) applyMapping(ctx context.Context, m *mapping.Mapping, content string, lerr error, digest string, how loadHow) (string, error) {
	path := d.mapPath
	if lerr != nil {
		d.failedDigest = digest
		d.recordReload(false, lerr)
		logProblems(d.log, "mapping reload rejected", lerr)
		d.log.Warn("previous mapping stays in force", "path", path, "generation", d.generation)
		return "", lerr
	}
	if !how.confirm && d.maxWithdrawPercent < 100 {
		withdraw, announced, err := d.withdrawals(ctx, m)
		if err != nil {
			return "", fmt.Errorf("count the routes the reloaded mapping withdraws: %w", err)
		}
		if holdReload(withdraw, announced, d.maxWithdrawPercent) {
			return "", d.hold(digest, withdraw, announced)
		}
	}
	change, err := d.rec.SetMapping(ctx, m)
	if err != nil {
		return "", fmt.Errorf("put the reloaded mapping in force: %w", err)
	}
	d.dropHeld()
	d.fileDigest, d.failedDigest = digest, ""
	d.recordReload(true, nil)
	if content == d.contentDigest {
		d.log.Info("mapping reloaded", "generation", d.generation, "new_generation", false, "change", change.String(), "digest", content)
		return fmt.Sprintf("mapping generation %d stays in force: same content", d.generation), nil
	}
	d.contentDigest = content
	d.generation++
	d.loadedAt = time.Now()
	msg := fmt.Sprintf("mapping generation %d in force: %s", d.generation, change)
	d.log.Info("mapping reloaded", "generation", d.generation, "new_generation", true, "change", change.String(), "digest", content, "confirmed", how.confirm)
	return msg, nil
}

// holdReload is the mass-withdraw guard's decision: a reload that would
// withdraw withdraw of the announced routes is held when that is more than
// maxPercent of them. maxPercent 100 turns the guard off.
func holdReload(withdraw, announced, maxPercent int) bool {
	if maxPercent >= 100 || withdraw <= 0 {
		return false
	}
	if announced < withdraw {
		announced = withdraw
	}
	return int64(withdraw)*100 > int64(maxPercent)*int64(announced)
}

// withdrawals counts the announced routes from the mapping file that m
// would withdraw without a replacement: for each domain, how many fewer
// routes m gives it than it has announced (a route moved to another IP is
// not a withdrawal, an entry removed is). announced is every announced
// route.
func (d *Daemon) withdrawals(ctx context.Context, m *mapping.Mapping) (withdraw, announced int, err error) {
	snap, err := d.rec.Snapshot(ctx)
	if err != nil {
		return 0, 0, err
	}
	type dom struct{ name, uuid string }
	have := map[dom]int{}
	for _, w := range snap.Announced {
		if w.Source == reconcile.SourceFile || w.Source == "" {
			have[dom{w.Domain, w.UUID}]++
		}
	}
	for k, n := range have {
		_, routes := m.Lookup(k.name, k.uuid)
		withdraw += max(0, n-len(routes))
	}
	return withdraw, len(snap.Announced), nil
}

// hold records a reload held by the guard and arms its confirmation timer.
// The same files held again keep their first time.
func (d *Daemon) hold(digest string, withdraw, announced int) error {
	h := d.held.hold(digest, withdraw, announced)
	d.metrics.ReloadHeld(withdraw)
	d.log.Warn("mapping reload held: it would withdraw too many routes",
		"withdraw", withdraw, "announced", announced, "max_withdraw_percent", d.maxWithdrawPercent,
		"apply_at", h.ApplyAt, "confirm", "virtbgp reload --force", "digest", digest)
	return fmt.Errorf("%w: %s", ErrReloadHeld, heldMessage(h))
}

func heldMessage(h *status.HeldReload) string {
	msg := fmt.Sprintf("it would withdraw %d of %d announced routes; confirm with `virtbgp reload --force`", h.Withdraw, h.Announced)
	if !h.ApplyAt.IsZero() {
		msg += fmt.Sprintf(", or it is applied at %s if the files stay unchanged", h.ApplyAt.Format(time.RFC3339))
	}
	return msg
}

// dropHeld forgets the held reload, if any.
func (d *Daemon) dropHeld() {
	if d.held.drop() {
		d.metrics.ReloadHeld(0)
	}
}

// heldExpired runs in the main loop when the held reload's files have been
// in place for mapping.withdraw-confirm-after: it applies them, off the
// loop, if they are still the same.
func (d *Daemon) heldExpired(ctx context.Context) {
	h := d.held.fired()
	if h == nil {
		return
	}
	digest := h.Digest
	d.log.Warn("applying the held mapping reload: its files stayed unchanged", "digest", digest, "since", h.Since)
	go func() {
		if _, err := d.loadMapping(ctx, loadHow{reread: true, confirm: true, onlyDigest: digest}); err != nil && ctx.Err() == nil {
			d.log.Warn("cannot apply the held mapping reload", "error", err)
		}
	}()
}

func (d *Daemon) recordReload(ok bool, err error) {
	now := time.Now()
	d.lastReload = status.Reload{At: now, OK: ok}
	if err != nil {
		list := fileerr.Errors(err)
		if len(list) == 0 {
			list = fileerr.ErrorList{{Msg: err.Error()}}
		}
		for i, e := range list {
			if i == status.MaxReloadErrors {
				d.lastReload.MoreErrors = len(list) - i
				break
			}
			s := e.Error()
			if e.File == "" {
				s = e.Msg
			}
			d.lastReload.Errors = append(d.lastReload.Errors, fileerr.Clip(s, maxErrorText))
		}
	}
	d.metrics.ReloadResult(ok, now)
}

// maxErrorText bounds each problem kept in status.
const maxErrorText = 1024
