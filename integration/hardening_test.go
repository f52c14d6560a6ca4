package integration

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
