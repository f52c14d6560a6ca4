package lab_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/integration/lab"
)

// TestHarness exercises the lab itself, without virtbgp: every migration
// variant the scenarios use, an aborted and a post-copy migration, a
// libvirtd restart under running guests, a second Down, and that Down
// leaves nothing behind.
func TestHarness(t *testing.T) {
	log := labTestLog(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	l, err := lab.Up(ctx, lab.Options{NoVirtbgp: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab up in %v, KVM %v", time.Since(t0).Round(time.Millisecond), l.KVM)
	downed := false
	t.Cleanup(func() {
		if !downed {
			if err := l.Down(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})
	A, B := l.A, l.B
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	state := func(h *lab.Host, name string) string {
		t.Helper()
		st, err := h.GuestState(ctx, name)
		must(err)
		return st
	}

	// The lab's state file names everything; Load reads it back.
	loaded, err := lab.Load(l.Dir, nil)
	must(err)
	if loaded.A.URI != A.URI || loaded.TorNS != l.TorNS || len(loaded.Processes()) != len(l.Processes()) {
		t.Errorf("loaded lab differs: %+v", loaded.Processes())
	}

	// Transient guest: plain, p2p, and client-managed over TCP from the
	// source's namespace.
	must(A.CreateGuest(ctx, lab.Guest{Name: "g"}))
	for _, c := range []struct {
		from, to *lab.Host
		o        lab.MigrateOptions
	}{{A, B, lab.MigrateOptions{}}, {B, A, lab.MigrateOptions{P2P: true}}, {A, B, lab.MigrateOptions{TCP: true}}} {
		m, err := l.StartMigration(ctx, "g", c.from, c.to, c.o)
		must(err)
		must(m.Wait(ctx))
		ji, err := c.to.JobInfo(ctx, "g", true)
		must(err)
		d, _ := ji.Downtime()
		t.Logf("migrate %s -> %s %+v: %v, downtime %v", c.from.Name, c.to.Name, c.o, m.Took().Round(time.Millisecond), d)
		if st := state(c.to, "g"); st != "running (migrated)" {
			t.Errorf("after migration to %s: %q", c.to.Name, st)
		}
		if names, _ := c.from.Guests(ctx, true); slices.Contains(names, "g") {
			t.Errorf("%s still has g: %v", c.from.Name, names)
		}
	}

	// Persistent guest, --persistent --undefinesource.
	must(A.DefineGuest(ctx, lab.Guest{Name: "p", UUID: "6695eb01-f6a4-8304-79aa-97f2502e193f"}))
	must(A.StartGuest(ctx, "p"))
	must(l.Migrate(ctx, "p", A, B, lab.MigrateOptions{Persistent: true, UndefineSource: true}))
	if names, _ := A.Guests(ctx, true); slices.Contains(names, "p") {
		t.Errorf("hvA still defines p: %v", names)
	}
	if u, err := B.GuestUUID(ctx, "p"); err != nil || u != "6695eb01-f6a4-8304-79aa-97f2502e193f" {
		t.Errorf("p on hvB: uuid %q %v", u, err)
	}
	must(B.DestroyGuest(ctx, "p"))
	if st := state(B, "p"); !strings.HasPrefix(st, "shut off") {
		t.Errorf("p after destroy on hvB: %q (want defined, shut off)", st)
	}

	// A guest whose memory is full, migrated slowly, then aborted.
	t0 = time.Now()
	must(A.CreateGuest(ctx, lab.Guest{Name: "f", FillMiB: 8}))
	hctx, hcancel := context.WithTimeout(ctx, time.Minute)
	must(A.WaitGuestHalted(hctx, "f"))
	hcancel()
	t.Logf("fill-memory guest full after %v", time.Since(t0).Round(time.Millisecond))
	m, err := l.StartMigration(ctx, "f", A, B, lab.MigrateOptions{Bandwidth: 1})
	must(err)
	must(lab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		ji, err := A.JobInfo(ctx, "f", false)
		if err != nil {
			return err
		}
		if ji["Job type"] != "Unbounded" {
			return errors.New("no migration job yet: " + ji["Job type"])
		}
		return nil
	}))
	if st := state(B, "f"); st != "paused (migration)" && st != "paused (incoming migration)" {
		t.Logf("f on hvB during the migration: %q", st)
	}
	must(A.AbortJob(ctx, "f"))
	if err := m.Wait(ctx); err == nil || !strings.Contains(err.Error(), "cancel") {
		t.Errorf("aborted migration: %v", err)
	}
	if st := state(A, "f"); !strings.HasPrefix(st, "running") {
		t.Errorf("f on hvA after the abort: %q", st)
	}
	must(lab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		if names, _ := B.Guests(ctx, true); slices.Contains(names, "f") {
			return errors.New("hvB still has f")
		}
		return nil
	}))

	// Post-copy: slow pre-copy, then switch.
	m, err = l.StartMigration(ctx, "f", A, B, lab.MigrateOptions{Postcopy: true, Bandwidth: 1})
	must(err)
	must(lab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		return A.MigratePostcopy(ctx, "f")
	}))
	must(m.Wait(ctx))
	t.Logf("post-copy migration took %v", m.Took().Round(time.Millisecond))
	if st := state(B, "f"); !strings.HasPrefix(st, "running") {
		t.Errorf("f on hvB after post-copy: %q", st)
	}

	// libvirtd restarts (SIGTERM, then a crash) while guests run.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		pid := B.LibvirtdPID()
		if pid == 0 {
			t.Fatal("no libvirtd on hvB")
		}
		t0 = time.Now()
		must(B.StopLibvirtd(ctx, sig))
		if _, err := B.Guests(ctx, false); err == nil {
			t.Errorf("libvirtd on hvB answers after it was stopped with %v", sig)
		}
		must(B.StartLibvirtd(ctx))
		t.Logf("libvirtd on hvB restarted (%v) in %v, pid %d -> %d", sig, time.Since(t0).Round(time.Millisecond), pid, B.LibvirtdPID())
		names, err := B.Guests(ctx, false)
		must(err)
		if !slices.Contains(names, "f") || !slices.Contains(names, "g") {
			t.Errorf("running guests on hvB after the restart: %v", names)
		}
	}
	t0 = time.Now()
	must(B.DestroyGuest(ctx, "g"))
	if d := time.Since(t0); d > time.Second {
		t.Errorf("destroying a guest after the libvirtd restart took %v (zombie not reaped?)", d)
	}

	// Down, twice; nothing left.
	procs := l.Processes()
	t0 = time.Now()
	must(l.Down(ctx))
	downed = true
	t.Logf("lab down in %v", time.Since(t0).Round(time.Millisecond))
	must(l.Down(ctx))
	for _, ns := range l.Namespaces() {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			t.Errorf("namespace %s left", ns)
		}
	}
	for _, p := range l.Processes() {
		if p.Alive {
			t.Errorf("process %s (pid %d) left", p.Name, p.PID)
		}
	}
	if len(procs) < 5 {
		t.Errorf("the lab tracked only %v", procs)
	}
	if _, err := os.Stat(l.Dir); err == nil {
		t.Errorf("lab dir %s left", l.Dir)
	}
}

// labTestLog skips a lab test under -short and returns the log for the lab:
// progress on stderr with -v, nothing otherwise.
func labTestLog(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Short() {
		t.Skip("the real-world lab does not run with -short")
	}
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}
