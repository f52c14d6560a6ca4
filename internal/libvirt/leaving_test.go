package libvirt

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/reconcile"
)

// TestLeavingRole: on a fake clock, a running domain is leaving from its
// first migration iteration while its job is an outgoing migration, is
// read again every leavingRecheck (a pre-copy that fails sends no event),
// and is no longer leaving once its job is gone or it stops.
func TestLeavingRole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &Adapter{log: slog.New(slog.DiscardHandler), hints: make(chan reconcile.Hint, 8),
			resyncKick: make(chan struct{}, 1),
			incoming:   map[string]bool{}, leaving: map[string]bool{}, rechecks: map[string]bool{}}
		const uuid, name = "00000000-0000-0000-0000-000000000001", "web"
		calls := 0
		job := func(op lv.DomainJobOperationType, ok bool) func() (lv.DomainJobOperationType, bool) {
			return func() (lv.DomainJobOperationType, bool) { calls++; return op, ok }
		}
		out := job(lv.DOMAIN_JOB_OPERATION_MIGRATION_OUT, true)
		hint := func() string {
			t.Helper()
			synctest.Wait()
			select {
			case h := <-a.hints:
				return h.Event
			default:
				return ""
			}
		}

		if got := a.leavingRole(uuid, name, out); got != reconcile.MigrationNone || calls != 0 {
			t.Fatalf("unmarked: %v after %d job reads, want none after 0", got, calls)
		}
		a.markLeaving(uuid, name, 1)
		a.markLeaving(uuid, name, 2)
		if h := hint(); h != "Migration Iteration 1" {
			t.Fatalf("hint %q, want the first iteration's", h)
		}
		if h := hint(); h != "" {
			t.Fatalf("a second hint %q for the second iteration", h)
		}
		if got := a.leavingRole(uuid, name, out); got != reconcile.MigrationLeaving || calls != 1 {
			t.Fatalf("marked, job migration_out: %v after %d job reads", got, calls)
		}
		// Read again (by the reconciler) before the recheck: one timer.
		a.leavingRole(uuid, name, out)
		time.Sleep(leavingRecheck - time.Millisecond)
		if h := hint(); h != "" {
			t.Fatalf("hint %q before the recheck", h)
		}
		time.Sleep(time.Millisecond)
		if h := hint(); h != "Migration Check" {
			t.Fatalf("hint %q at the recheck, want Migration Check", h)
		}
		if h := hint(); h != "" {
			t.Fatalf("a second recheck hint %q", h)
		}

		// The job is gone (a cancelled pre-copy): not leaving any more,
		// and the armed recheck offers nothing.
		a.leavingRole(uuid, name, out) // arms a recheck
		if got := a.leavingRole(uuid, name, job(0, false)); got != reconcile.MigrationNone {
			t.Fatalf("job gone: %v", got)
		}
		time.Sleep(leavingRecheck)
		if h := hint(); h != "" {
			t.Fatalf("hint %q for a domain no longer leaving", h)
		}
		if got := a.leavingRole(uuid, name, out); got != reconcile.MigrationNone {
			t.Fatalf("after the job ended, without a new iteration: %v", got)
		}

		// An incoming migration's job does not make it leaving either;
		// a stop forgets the mark.
		a.markLeaving(uuid, name, 1)
		hint()
		if got := a.leavingRole(uuid, name, job(lv.DOMAIN_JOB_OPERATION_MIGRATION_IN, true)); got != reconcile.MigrationNone {
			t.Fatalf("job migration_in: %v", got)
		}
		a.markLeaving(uuid, name, 1)
		hint()
		a.trackMigration(uuid, lv.DOMAIN_EVENT_STOPPED, int(lv.DOMAIN_EVENT_STOPPED_MIGRATED))
		if got := a.leavingRole(uuid, name, out); got != reconcile.MigrationNone {
			t.Fatalf("after Stopped Migrated: %v", got)
		}
	})
}
