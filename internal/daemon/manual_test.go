package daemon

import (
	"context"
	"maps"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/mapping"
)

// fakeManual records what SetManual put in force.
type fakeManual struct {
	mu  sync.Mutex
	now []mapping.Route
}

func (f *fakeManual) SetManual(_ context.Context, rs []mapping.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = rs
	return nil
}

func (f *fakeManual) prefixes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.now {
		out = append(out, r.Prefix.String())
	}
	return out
}

// TestManualLeases: on a fake clock, a lease ends at its TTL and is
// withdrawn (and no longer in the state file), a renewed one lives on, a
// route without a lease stays; the timer always aims at the next end.
func TestManualLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		mr, start, err := loadManual(dir, mapping.Allow{}, testLogger())
		if err != nil || len(start) != 0 {
			t.Fatalf("loadManual = %v, %v", start, err)
		}
		var counts []int
		mr.onChange = func(n, expired int) { counts = append(counts, expired) }
		rec := &fakeManual{}
		ctx := context.Background()
		route := func(p string, ttl time.Duration, prev *manual.Route) manual.Route {
			return manual.New(mapping.Route{Prefix: netip.MustParsePrefix(p)}, ttl, "", "uid 0", time.Now(), prev)
		}
		next := map[netip.Prefix]manual.Route{}
		for _, r := range []manual.Route{route("198.51.100.1/32", 10*time.Second, nil), route("198.51.100.2/32", 10*time.Second, nil),
			route("198.51.100.3/32", 0, nil)} {
			next[r.Prefix] = r
		}
		if err := mr.commit(ctx, rec, next, 0); err != nil {
			t.Fatal(err)
		}
		// The main loop's part: serve the timer.
		serve := func(d time.Duration) {
			deadline := time.After(d)
			for {
				select {
				case <-mr.timerC():
					mr.expire(ctx, rec)
				case <-deadline:
					return
				}
			}
		}
		serve(5 * time.Second)
		// Renew .2 at 5 s for 10 s more.
		renewed := maps.Clone(mr.routes)
		old := renewed[netip.MustParsePrefix("198.51.100.2/32")]
		renewed[old.Prefix] = route("198.51.100.2/32", 10*time.Second, &old)
		if err := mr.commit(ctx, rec, renewed, 0); err != nil {
			t.Fatal(err)
		}
		serve(5*time.Second - time.Millisecond)
		if got := rec.prefixes(); len(got) != 3 {
			t.Fatalf("just before the first lease ends: %v", got)
		}
		serve(2 * time.Millisecond)
		if got := rec.prefixes(); len(got) != 2 || got[0] != "198.51.100.2/32" || got[1] != "198.51.100.3/32" {
			t.Fatalf("after the first lease ended: %v, want .2 (renewed) and .3", got)
		}
		serve(5 * time.Second)
		if got := rec.prefixes(); len(got) != 1 || got[0] != "198.51.100.3/32" {
			t.Fatalf("after the renewed lease ended: %v, want .3 only", got)
		}
		if mr.timerC() != nil {
			t.Error("a timer is armed with no lease left")
		}
		saved, err := manual.Load(mr.path, time.Time{})
		if err != nil || len(saved) != 1 {
			t.Errorf("state file after the leases: %v, %v", saved, err)
		}
		if want := []int{0, 0, 1, 1}; len(counts) != len(want) || counts[2] != 1 || counts[3] != 1 {
			t.Errorf("expired counts %v, want %v", counts, want)
		}
	})
}

// TestManualLeaseAcrossRestart: a lease read back from the state file at
// start still ends at its time.
func TestManualLeaseAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		r := manual.New(mapping.Route{Prefix: netip.MustParsePrefix("198.51.100.1/32")}, 10*time.Second, "", "uid 0", time.Now(), nil)
		if err := manual.Save(dir+"/"+manual.FileName, map[netip.Prefix]manual.Route{r.Prefix: r}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second) // the restart
		mr, start, err := loadManual(dir, mapping.Allow{}, testLogger())
		if err != nil || len(start) != 1 {
			t.Fatalf("loadManual = %v, %v", start, err)
		}
		rec := &fakeManual{now: start}
		if mr.timerC() == nil {
			t.Fatal("no lease timer after the start")
		}
		t0 := time.Now()
		<-mr.timerC()
		mr.expire(context.Background(), rec)
		if took := time.Since(t0); took != 6*time.Second || len(rec.prefixes()) != 0 {
			t.Errorf("the lease ended %v after the start with %v left; want 6s and nothing", took, rec.prefixes())
		}
	})
}
