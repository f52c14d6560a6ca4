package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/testutil"
)

// TestMassWithdrawHeldAtTheToR: a mapping that would withdraw every
// announced route (vms: {}, renamed into place: the watcher loads it) is
// held: the ToRs keep the routes, status says why, and `virtbgp reload
// --force` (the control socket's reload-force) applies it.
func TestMassWithdrawHeldAtTheToR(t *testing.T) {
	l := startLab(t, e2eMapping)
	web := l.define(t, "e2e-web", "")
	do(t, "create", web.Create())
	webRoutes := []string{"192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"}
	l.wantAll(t, webRoutes...)

	path := filepath.Join(l.dir, "mapping.yaml")
	tmp := filepath.Join(l.dir, ".mapping.yaml.new")
	writeFile(t, tmp, "version: 1\nvms: {}\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() string {
		rep, err := l.ctl().Status(l.ctx)
		if err != nil {
			return err.Error()
		}
		if h := rep.Mapping.Held; h == nil || h.Withdraw != 3 || h.Announced != 3 {
			return "no held reload of 3 of 3 routes in status"
		}
		return ""
	})
	// A barrier: the pinned domain, started now, is announced after
	// anything the held reload could have sent.
	pinned := l.define(t, "e2e-pinned", pinnedUUID)
	do(t, "create pinned", pinned.Create())
	withPinned := append(slices.Clone(webRoutes), "192.0.2.20/32")
	l.wantAll(t, withPinned...)

	// A plain reload (SIGHUP) holds it again; --force applies it.
	_, err := l.ctl().Reload(l.ctx)
	var de *control.DaemonError
	if !errors.As(err, &de) || !strings.Contains(de.Message, "it would withdraw 4 of 4 announced routes") {
		t.Fatalf("reload: %v, want it held", err)
	}
	msg, err := l.ctl().ReloadForce(l.ctx)
	if err != nil || !strings.Contains(msg, "mapping generation 2 in force") {
		t.Fatalf("reload --force: %q, %v", msg, err)
	}
	l.wantAll(t)
	rep, err := l.ctl().Status(l.ctx)
	if err != nil || rep.Mapping.Held != nil || !rep.Mapping.LastReload.OK {
		t.Fatalf("after --force: held %+v, last reload %+v, %v", rep.Mapping.Held, rep.Mapping.LastReload, err)
	}
}

// halfMapping maps e2e-pinned (192.0.2.20) and, last, e2e-web to ip, so
// that the file ends with web's address.
func halfMapping(ip string) string {
	return "version: 1\nvms:\n  e2e-pinned:\n    uuid: " + pinnedUUID + "\n    ips: [192.0.2.20]\n  e2e-web:\n    ips:\n      - " + ip + "\n"
}

// TestHalfWrittenMappingNeverReachesTheToR: a writer that writes the
// mapping in place in two steps, pausing between them for longer than the
// debounce, is read only once it closes the file: the ToR never gets the
// address that the half-written file named (198.51.100.234 cut 2 bytes
// short is 198.51.100.23, someone else's).
func TestHalfWrittenMappingNeverReachesTheToR(t *testing.T) {
	l := startLab(t, halfMapping("192.0.2.10"))
	web := l.define(t, "e2e-web", "")
	do(t, "create", web.Create())
	l.wantAll(t, "192.0.2.10/32")

	// Every best path the eBGP ToR ever has, from now on.
	var mu sync.Mutex
	seen := map[string]bool{}
	wctx, cancel := context.WithCancel(l.ctx)
	defer cancel()
	err := l.ebgp.Server.WatchEvent(wctx, &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{
		Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST}},
	}}, func(ev *api.WatchEventResponse) {
		for _, ap := range ev.GetTable().GetPaths() {
			if p, err := bgptest.DecodePath(ap); err == nil && !ap.GetIsWithdraw() {
				mu.Lock()
				seen[p.Prefix.String()] = true
				mu.Unlock()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	full := halfMapping("198.51.100.234")
	f, err := os.OpenFile(filepath.Join(l.dir, "mapping.yaml"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(full[:len(full)-2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the slow writer of the issue
	if _, err := f.WriteString(full[len(full)-2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	l.wantAll(t, "198.51.100.234/32")
	// A barrier: the pinned domain's route reaches the ToR after anything
	// the reloads sent.
	pinned := l.define(t, "e2e-pinned", pinnedUUID)
	do(t, "create pinned", pinned.Create())
	l.wantAll(t, "198.51.100.234/32", "192.0.2.20/32")
	mu.Lock()
	defer mu.Unlock()
	if seen["198.51.100.23/32"] {
		t.Fatalf("the ToR got 198.51.100.23/32 from the half-written mapping; best paths seen: %v", seen)
	}
	if !seen["198.51.100.234/32"] || !seen["192.0.2.20/32"] {
		t.Fatalf("the watch of the ToR's best paths missed routes: %v", seen)
	}
}
