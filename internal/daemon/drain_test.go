package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/testutil"
)

// fakeRec is the reconciler as the drain sees it: it records each drain
// state put in force, and when.
type fakeRec struct {
	drain reconcile.Drain
	sets  []setDrain
}

type setDrain struct {
	state reconcile.Drain
	at    time.Time
}

func (f *fakeRec) SetDrain(_ context.Context, d reconcile.Drain) error {
	f.drain = d
	f.sets = append(f.sets, setDrain{d, time.Now()})
	return nil
}

func (f *fakeRec) Snapshot(context.Context) (reconcile.Snapshot, error) {
	return reconcile.Snapshot{Drain: f.drain}, nil
}

// newDrainer loads a drainer from dir as New does, on a fakeRec in the
// state it returns.
func newDrainer(t *testing.T, dir string, grace time.Duration) (*drainer, *fakeRec, *testutil.SyncBuffer) {
	t.Helper()
	log, logs := testutil.Logger()
	dr := &drainer{log: log}
	state, err := dr.load(dir, grace)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	rec := &fakeRec{drain: state}
	dr.rec = rec
	return dr, rec, logs
}

func readRecord(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, drainFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A drain.json written by the version before the one Drain type (its
// states were status.DrainNone/Draining/Drained strings) still loads, and
// the file written now is the same format.
func TestDrainRecordOfTheOldVersion(t *testing.T) {
	since := time.Date(2026, 5, 9, 7, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		file  string
		grace time.Duration
		want  reconcile.Drain
		timer bool
	}{
		{`{"state":"none","since":"2026-05-09T07:00:00Z"}` + "\n", time.Minute, reconcile.DrainNone, false},
		{`{"state":"drained","since":"2026-05-09T07:00:00Z"}` + "\n", time.Minute, reconcile.DrainDrained, false},
		// Still draining: the grace time is not over (ends in about a year).
		{`{"state":"draining","since":"2026-05-09T07:00:00Z"}` + "\n", time.Since(since) + 365*24*time.Hour, reconcile.DrainDraining, true},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, drainFile), []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
		dr, _, _ := newDrainer(t, dir, tc.grace)
		if got := dr.rec.(*fakeRec).drain; got != tc.want || !dr.since.Equal(since) || (dr.timer != nil) != tc.timer {
			t.Errorf("%s: state %v since %v timer %v; want %v since %v timer %v", tc.file, got, dr.since, dr.timer != nil, tc.want, since, tc.timer)
		}
		dr.stopTimer()
		// Written back in the same format.
		if err := dr.save(drainRecord{State: tc.want, Since: since}); err != nil {
			t.Fatal(err)
		}
		if got := readRecord(t, dir); got != tc.file {
			t.Errorf("saved %q, want %q", got, tc.file)
		}
	}
}

func TestDrainRecordErrors(t *testing.T) {
	for _, content := range []string{`{"state":"shutdown","since":"2026-05-09T07:00:00Z"}`, `{"state":`} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, drainFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := (&drainer{log: testLogger()}).load(dir, time.Minute)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, drainFile)) || !strings.Contains(err.Error(), "(fix or remove the file)") {
			t.Errorf("%s: load = %v, want an error naming the file", content, err)
		}
	}
	// No record: not drained, and the state directory is created.
	dir := filepath.Join(t.TempDir(), "state")
	dr := &drainer{log: testLogger()}
	if state, err := dr.load(dir, time.Minute); err != nil || state != reconcile.DrainNone {
		t.Errorf("load without a record = %v, %v", state, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v %v", fi, err)
	}
}

func testLogger() *slog.Logger { l, _ := testutil.Logger(); return l }

// The drain on the fake clock: GRACEFUL_SHUTDOWN at once, everything
// withdrawn exactly the graceful-shutdown time later, each step recorded
// before it is applied.
func TestDrainTimer(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dr, rec, logs := newDrainer(t, dir, time.Minute)
		t0 := time.Now()
		msg, err := dr.start(ctx, time.Minute)
		if err != nil || msg != "draining: every route carries GRACEFUL_SHUTDOWN (65535:0); all are withdrawn in 1m0s" {
			t.Fatalf("start = %q, %v", msg, err)
		}
		if !strings.Contains(readRecord(t, dir), `"state":"draining"`) {
			t.Errorf("record after start: %s", readRecord(t, dir))
		}
		if msg, err := dr.start(ctx, time.Minute); err != nil || !strings.HasPrefix(msg, "already draining since ") {
			t.Errorf("second start = %q, %v", msg, err)
		}
		fired := <-dr.timerC() // as the main loop does
		dr.finish(ctx)
		if got := fired.Sub(t0); got != time.Minute {
			t.Errorf("drain timer fired after %v, want 1m", got)
		}
		want := []setDrain{{reconcile.DrainDraining, t0}, {reconcile.DrainDrained, t0.Add(time.Minute)}}
		if len(rec.sets) != len(want) {
			t.Fatalf("drain states put in force %v, want %v", rec.sets, want)
		}
		for i, w := range want {
			if rec.sets[i].state != w.state || !rec.sets[i].at.Equal(w.at) {
				t.Errorf("drain state %d put in force: %v, want %v", i, rec.sets[i], w)
			}
		}
		if !strings.Contains(readRecord(t, dir), `"state":"drained"`) || dr.timerC() != nil {
			t.Errorf("after the end: record %s, timer %v", readRecord(t, dir), dr.timerC() != nil)
		}
		if !strings.Contains(logs.String(), "drained: every route withdrawn") {
			t.Errorf("log lacks the end of the drain:\n%s", logs)
		}
		if msg, err := dr.undrain(ctx); err != nil || msg != "undrained: routes announced again" || rec.drain != reconcile.DrainNone {
			t.Errorf("undrain = %q, %v; state %v", msg, err, rec.drain)
		}
		if msg, err := dr.undrain(ctx); err != nil || msg != "not drained" {
			t.Errorf("second undrain = %q, %v", msg, err)
		}
	})
}

// An undrain during the graceful-shutdown time cancels the withdrawal: on
// the fake clock, nothing happens when the time would have ended.
func TestUndrainStopsTheTimer(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dr, rec, _ := newDrainer(t, dir, time.Minute)
		if _, err := dr.start(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		if _, err := dr.undrain(ctx); err != nil {
			t.Fatal(err)
		}
		if dr.timerC() != nil {
			t.Fatal("timer still set after undrain")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if len(rec.sets) != 2 || rec.sets[1].state != reconcile.DrainNone || rec.drain != reconcile.DrainNone {
			t.Errorf("drain states put in force %v, want draining then none", rec.sets)
		}
		if !strings.Contains(readRecord(t, dir), `"state":"none"`) {
			t.Errorf("record: %s", readRecord(t, dir))
		}
	})
}

// A daemon restarted during a drain ends it when the graceful-shutdown
// time that began before the restart ends, or at once if it already has.
func TestDrainAcrossRestart(t *testing.T) {
	t.Run("time left", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			first, _, _ := newDrainer(t, dir, time.Minute)
			if _, err := first.start(ctx, time.Minute); err != nil {
				t.Fatal(err)
			}
			first.stopTimer() // the daemon stops
			time.Sleep(20 * time.Second)
			t0 := time.Now()
			dr, rec, logs := newDrainer(t, dir, time.Minute)
			if rec.drain != reconcile.DrainDraining {
				t.Fatalf("restarted in %v, want draining", rec.drain)
			}
			if !strings.Contains(logs.String(), "host is draining") {
				t.Errorf("log lacks the drain under way:\n%s", logs)
			}
			fired := <-dr.timerC()
			dr.finish(ctx)
			if got := fired.Sub(t0); got != 40*time.Second {
				t.Errorf("drain ended %v after the restart, want the 40s left", got)
			}
			if rec.drain != reconcile.DrainDrained {
				t.Errorf("state %v after the timer, want drained", rec.drain)
			}
		})
	})
	t.Run("time over", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			first, _, _ := newDrainer(t, dir, time.Minute)
			if _, err := first.start(context.Background(), time.Minute); err != nil {
				t.Fatal(err)
			}
			first.stopTimer()
			time.Sleep(2 * time.Minute)
			dr, rec, logs := newDrainer(t, dir, time.Minute)
			if rec.drain != reconcile.DrainDrained || dr.timerC() != nil || !dr.since.Equal(time.Now()) {
				t.Errorf("restarted in %v since %v (timer %v), want drained now", rec.drain, dr.since, dr.timerC() != nil)
			}
			if !strings.Contains(readRecord(t, dir), `"state":"drained"`) {
				t.Errorf("record: %s", readRecord(t, dir))
			}
			if !strings.Contains(logs.String(), "host is drained") {
				t.Errorf("log lacks the drained state:\n%s", logs)
			}
		})
	})
}

// Requests run in the main loop and return typed results; a loop that does
// not take or answer a request fails it when ctx ends.
func TestCall(t *testing.T) {
	d := &Daemon{reqs: make(chan func(context.Context))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		run := <-d.reqs
		run(ctx)
	}()
	n, err := call(ctx, d, "count", func(context.Context) (int, error) { return 42, nil })
	if n != 42 || err != nil {
		t.Errorf("call = %d, %v", n, err)
	}
	// Nobody takes the next request.
	short, stop := context.WithCancel(ctx)
	stop()
	if _, err := call(short, d, "drain", func(context.Context) (string, error) { return "x", nil }); !errors.Is(err, context.Canceled) ||
		err.Error() != "drain: the daemon did not take the request: context canceled" {
		t.Errorf("call without a loop = %v", err)
	}
}
