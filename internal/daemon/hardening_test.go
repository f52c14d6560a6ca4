package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/virtbgp/virtbgp/internal/status"
	vbtest "github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// mapTest maps the test driver's running domain "test" to these IPs.
func mapTest(ips ...string) string {
	return "version: 1\nvms:\n  test:\n    ips:\n      - " + strings.Join(ips, "\n      - ") + "\n"
}

// announced returns the prefixes the daemon announces, sorted.
func announced(t *testing.T, d *Daemon) []string {
	t.Helper()
	r, err := d.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range r.Routes {
		out = append(out, x.Prefix)
	}
	slices.Sort(out)
	return out
}

// wantAnnounced waits until the daemon announces exactly prefixes.
func wantAnnounced(t *testing.T, d *Daemon, prefixes ...string) {
	t.Helper()
	slices.Sort(prefixes)
	vbtest.Eventually(t, 10*time.Second, func() string {
		if got := announced(t, d); !slices.Equal(got, prefixes) {
			return fmt.Sprintf("announced %v, want %v", got, prefixes)
		}
		return ""
	})
}

// writeRenamed writes path by renaming a new file into place.
func writeRenamed(t *testing.T, path, text string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	writeTestFile(t, tmp, text)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadHeldUntilConfirmed: a reload that withdraws more than
// mapping.max-withdraw-percent of the announced routes (here `vms: {}`,
// which withdrew everything at INFO) is held, said so at WARN, in status
// and in metrics, and applied only when confirmed; a smaller one is
// applied at once.
func TestReloadHeldUntilConfirmed(t *testing.T) {
	ctx := context.Background()
	four := []string{"192.0.2.10/32", "192.0.2.11/32", "192.0.2.12/32", "2001:db8::10/128"}
	d, mp, logs := startTestDaemon(t, mapTest("192.0.2.10", "192.0.2.11", "192.0.2.12", "2001:db8::10"))
	wantAnnounced(t, d, four...)

	// One of four: 25%, under the default 50%.
	writeTestFile(t, mp, mapTest("192.0.2.10", "192.0.2.11", "2001:db8::10"))
	if err := d.Reload(ctx); err != nil {
		t.Fatalf("reload withdrawing 1 of 4: %v", err)
	}
	three := []string{"192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"}
	wantAnnounced(t, d, three...)

	writeTestFile(t, mp, "version: 1\nvms: {}\n")
	err := d.Reload(ctx)
	if !errors.Is(err, ErrReloadHeld) || !strings.Contains(err.Error(), "it would withdraw 3 of 3 announced routes; confirm with `virtbgp reload --force`") {
		t.Fatalf("reload of vms: {}: %v, want it held", err)
	}
	if got := announced(t, d); !slices.Equal(got, three) {
		t.Fatalf("a held reload changed the routes: %v", got)
	}
	r, _ := d.Report(ctx)
	if h := r.Mapping.Held; h == nil || h.Withdraw != 3 || h.Announced != 3 || h.ApplyAt.Sub(h.Since) != 10*time.Minute {
		t.Fatalf("status held = %+v, want 3 of 3, applied 10m after", h)
	}
	if g := metricValue(t, d, "virtbgp_mapping_reload_held_withdrawals"); g != 3 {
		t.Fatalf("held metric %v, want 3", g)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="mapping reload held: it would withdraw too many routes" withdraw=3 announced=3`) {
		t.Fatalf("no WARN about the held reload in:\n%s", logs)
	}

	msg, err := d.ReloadConfirmed(ctx)
	if err != nil || !strings.Contains(msg, "in force") {
		t.Fatalf("confirmed reload: %q, %v", msg, err)
	}
	wantAnnounced(t, d)
	if r, _ := d.Report(ctx); r.Mapping.Held != nil || metricValue(t, d, "virtbgp_mapping_reload_held_withdrawals") != 0 {
		t.Fatalf("after confirmation: held %+v", r.Mapping.Held)
	}
}

// TestHeldReloadAppliedWhenFilesStay: a held reload whose files stay
// unchanged for mapping.withdraw-confirm-after is applied without
// confirmation.
func TestHeldReloadAppliedWhenFilesStay(t *testing.T) {
	ctx := context.Background()
	d, mp, logs := startTestDaemonWith(t, mapTest("192.0.2.10", "192.0.2.11"),
		"{path: mapping.yaml, watch: false, withdraw-confirm-after: 1s}", nil, nil)
	wantAnnounced(t, d, "192.0.2.10/32", "192.0.2.11/32")
	writeTestFile(t, mp, "version: 1\nvms: {}\n")
	if err := d.Reload(ctx); !errors.Is(err, ErrReloadHeld) {
		t.Fatalf("reload: %v, want it held", err)
	}
	wantAnnounced(t, d) // applied a second later
	if !strings.Contains(logs.String(), `msg="applying the held mapping reload: its files stayed unchanged"`) {
		t.Fatalf("no log of the held reload applied:\n%s", logs)
	}
	if r, _ := d.Report(ctx); r.Mapping.Held != nil || r.Mapping.Generation != 2 {
		t.Fatalf("after: held %+v generation %d", r.Mapping.Held, r.Mapping.Generation)
	}
}

// TestReloadDoesNotBlockTheLoop: while a mapping is read and validated,
// the main loop answers status (and so the watchdog); it gets only the
// finished mapping.
func TestReloadDoesNotBlockTheLoop(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	d, mp, _ := startTestDaemonWith(t, mapTest("192.0.2.10"), "{path: mapping.yaml, watch: false}", nil, func(d *Daemon) {
		d.load = func(path string, max int64) (*mapping.Mapping, error) {
			close(entered)
			<-release
			return mapping.LoadMax(path, max)
		}
	})
	writeTestFile(t, mp, mapTest("192.0.2.20"))
	done := make(chan error, 1)
	go func() { done <- d.Reload(context.Background()) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !d.healthy(ctx) {
		t.Fatal("the watchdog's check failed while a mapping was loading")
	}
	if got := announced(t, d); !slices.Equal(got, []string{"192.0.2.10/32"}) {
		t.Fatalf("announced %v while loading", got)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantAnnounced(t, d, "192.0.2.20/32")
}

// TestReloadOfAFIFO: a FIFO put at the mapping path is an error, not a
// main loop blocked in open(2).
func TestReloadOfAFIFO(t *testing.T) {
	d, mp, _ := startTestDaemon(t, mapTest("192.0.2.10"))
	if err := os.Remove(mp); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(mp, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "not a regular file (a FIFO)") {
		t.Fatalf("reload of a FIFO: %v", err)
	}
	r, err := d.Report(ctx)
	if err != nil || r.Mapping.LastReload.OK || len(r.Mapping.LastReload.Errors) != 1 {
		t.Fatalf("report %+v, %v", r.Mapping.LastReload, err)
	}
	wantAnnounced(t, d, "192.0.2.10/32")
}

// TestReloadErrorsKeptInStatusAreBounded: status and the log keep the
// first status.MaxReloadErrors problems and count the rest; each is cut.
func TestReloadErrorsKeptInStatusAreBounded(t *testing.T) {
	d, mp, logs := startTestDaemon(t, mapTest("192.0.2.10"))
	var b strings.Builder
	b.WriteString("version: 1\nvms:\n")
	for i := range 30 {
		fmt.Fprintf(&b, "  vm%d:\n    ips: [%s]\n", i, strings.Repeat("z", 10000))
	}
	writeTestFile(t, mp, b.String())
	if err := d.Reload(context.Background()); err == nil {
		t.Fatal("a broken mapping was accepted")
	}
	if n := strings.Count(logs.String(), `msg="mapping reload rejected" problem=`); n != status.MaxReloadErrors {
		t.Fatalf("%d problems logged, want %d", n, status.MaxReloadErrors)
	}
	if !strings.Contains(logs.String(), `msg="mapping reload rejected" more_problems=10`) {
		t.Fatalf("no count of the problems left out of the log:\n%s", logs)
	}
	r, _ := d.Report(context.Background())
	last := r.Mapping.LastReload
	if len(last.Errors) != status.MaxReloadErrors || last.MoreErrors != 30-status.MaxReloadErrors {
		t.Fatalf("status keeps %d problems and %d more, want %d and %d", len(last.Errors), last.MoreErrors, status.MaxReloadErrors, 30-status.MaxReloadErrors)
	}
	for _, e := range last.Errors {
		if len(e) > 300 {
			t.Fatalf("a problem of %d bytes in status: %.200s", len(e), e)
		}
	}
}

// TestWatchLoadsOnlyCompleteWrites: a writer that writes the mapping in
// place in two steps is read once it closes the file, never half-written
// (cut 2 bytes short, 198.51.100.234 read as 198.51.100.23: someone
// else's address announced).
func TestWatchLoadsOnlyCompleteWrites(t *testing.T) {
	d, mp, logs := startTestDaemonWith(t, mapTest("192.0.2.10"), "{path: mapping.yaml}", nil, nil)
	wantAnnounced(t, d, "192.0.2.10/32")
	full := mapTest("198.51.100.234")
	f, err := os.OpenFile(mp, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(full[:len(full)-2]); err != nil {
		t.Fatal(err)
	}
	// The writer pauses, as a slow one does, for longer than the
	// debounce; the old watcher read the file meanwhile.
	time.Sleep(4 * watchQuiet)
	if _, err := f.WriteString(full[len(full)-2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wantAnnounced(t, d, "198.51.100.234/32")
	if strings.Contains(logs.String(), "prefix=198.51.100.23/32") {
		t.Fatalf("the half-written file was loaded:\n%s", logs)
	}
	if r, _ := d.Report(context.Background()); r.Mapping.Generation != 2 {
		t.Fatalf("generation %d, want 2: one reload", r.Mapping.Generation)
	}
}

// TestWatchFollowsTheFiles: the watcher sees the ways the mapping's files
// are replaced: renamed into place, a symbolic link on the path swapped
// atomically (Kubernetes ConfigMaps, release directories), and the target
// of a link into another directory edited.
func TestWatchFollowsTheFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, dir string)
		path   string
		change func(t *testing.T, dir string)
	}{
		{
			name: "renamed into place",
			path: "mapping.yaml",
			change: func(t *testing.T, dir string) {
				writeRenamed(t, filepath.Join(dir, "mapping.yaml"), mapTest("192.0.2.20"))
			},
		},
		{
			name: "symbolic link swapped atomically",
			setup: func(t *testing.T, dir string) {
				for v, ip := range map[string]string{"v1": "192.0.2.10", "v2": "192.0.2.20"} {
					if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
						t.Fatal(err)
					}
					writeTestFile(t, filepath.Join(dir, v, "m.yaml"), mapTest(ip))
				}
				if err := os.Symlink("v1", filepath.Join(dir, "current")); err != nil {
					t.Fatal(err)
				}
			},
			path: "current/m.yaml",
			change: func(t *testing.T, dir string) {
				if err := os.Symlink("v2", filepath.Join(dir, "tmp")); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "current")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "link into another directory, target edited in place",
			setup: func(t *testing.T, dir string) {
				if err := os.Mkdir(filepath.Join(dir, "other"), 0o755); err != nil {
					t.Fatal(err)
				}
				writeTestFile(t, filepath.Join(dir, "other", "real.yaml"), mapTest("192.0.2.10"))
				if err := os.Symlink(filepath.Join(dir, "other", "real.yaml"), filepath.Join(dir, "link.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			path: "link.yaml",
			change: func(t *testing.T, dir string) {
				writeTestFile(t, filepath.Join(dir, "other", "real.yaml"), mapTest("192.0.2.20"))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dir string
			d, _, _ := startTestDaemonWith(t, mapTest("192.0.2.10"), "{path: "+tc.path+"}", func(d string) {
				dir = d
				if tc.setup != nil {
					tc.setup(t, d)
				}
			}, nil)
			wantAnnounced(t, d, "192.0.2.10/32")
			tc.change(t, dir)
			wantAnnounced(t, d, "192.0.2.20/32")
		})
	}
}

// TestWatchFollowsAReplacedDirectory: a mapping directory replaced by
// `mv dir dir.old; mv dir.new dir` is watched again; while it is gone,
// status and metrics say the watch is lost.
func TestWatchFollowsAReplacedDirectory(t *testing.T) {
	var dir string
	d, _, _ := startTestDaemonWith(t, mapTest("192.0.2.99"), "{path: m.d}", func(d string) {
		dir = d
		if err := os.Mkdir(filepath.Join(d, "m.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(d, "m.d", "a.yaml"), mapTest("192.0.2.10"))
	}, nil)
	wantAnnounced(t, d, "192.0.2.10/32")
	watchIs := func(state string, ok float64) {
		t.Helper()
		vbtest.Eventually(t, 10*time.Second, func() string {
			r, _ := d.Report(context.Background())
			if r.Mapping.Watch.State != state || metricValue(t, d, "virtbgp_mapping_watch_ok") != ok {
				return fmt.Sprintf("watch %+v, metric %v; want %s, %v", r.Mapping.Watch, metricValue(t, d, "virtbgp_mapping_watch_ok"), state, ok)
			}
			return ""
		})
	}
	watchIs("ok", 1)

	if err := os.Mkdir(filepath.Join(dir, "m.d.new"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "m.d.new", "a.yaml"), mapTest("192.0.2.20"))
	if err := os.Rename(filepath.Join(dir, "m.d"), filepath.Join(dir, "m.d.old")); err != nil {
		t.Fatal(err)
	}
	watchIs("polling", 0)
	if err := os.Rename(filepath.Join(dir, "m.d.new"), filepath.Join(dir, "m.d")); err != nil {
		t.Fatal(err)
	}
	wantAnnounced(t, d, "192.0.2.20/32")
	watchIs("ok", 1)
	// Edits in the new directory are seen.
	writeTestFile(t, filepath.Join(dir, "m.d", "a.yaml"), mapTest("192.0.2.30"))
	wantAnnounced(t, d, "192.0.2.30/32")
}

// TestDebounceIsBounded: a change is acted on watchQuiet after the last
// one, and changes that never stop still get a reload every watchMaxWait.
func TestDebounceIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		in, out := make(chan struct{}, 1), make(chan struct{}, 1)
		go debounce(ctx, in, out, watchQuiet, watchMaxWait)

		start := time.Now()
		in <- struct{}{}
		<-out
		if took := time.Since(start); took != watchQuiet {
			t.Fatalf("one change: reload after %v, want %v", took, watchQuiet)
		}

		// A change every 250ms, for 10s.
		start = time.Now()
		var fired []time.Duration
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		in <- struct{}{}
		for time.Since(start) < 10*time.Second {
			select {
			case <-tick.C:
				in <- struct{}{}
			case <-out:
				fired = append(fired, time.Since(start))
			}
		}
		if len(fired) < 4 || fired[0] != watchMaxWait {
			t.Fatalf("changes every 250ms for 10s: reloads at %v, want one every %v", fired, watchMaxWait)
		}
	})
}
