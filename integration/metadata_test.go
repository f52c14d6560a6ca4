package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// metaVM is the guest whose routes come from its virtbgp metadata only.
const metaVM = "meta"

// metaElement is its element: the attributes scCheckRIB checks.
const metaElement = `<vm med="65" communities="65001:65" large-communities="65001:6:65">` +
	`<ip prefix="192.0.2.65"/><ip prefix="2001:db8:65::65"/></vm>`

// metaConfig is mapping.metadata of both hosts' virtbgp.
const metaConfig = `metadata:
  enabled: true
  allowed-prefixes: [192.0.2.0/24, "2001:db8::/32"]
`

func init() {
	scVMs[metaVM] = scVM{netip.MustParsePrefix("192.0.2.65/32"), netip.MustParsePrefix("2001:db8:65::65/128"), 65,
		[]uint32{65001<<16 | 65}, []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 6, LocalData2: 65}}}
}

// TestLabMetadataMigration: a guest whose service IPs are only in its
// virtbgp metadata (set with --live --config), on hosts whose mapping
// files do not name it, is announced on both ToRs with the element's
// attributes and live-migrates A -> B -> A (persistent, source undefined)
// with make-before-break intact: the metadata moves with the guest, and
// each destination announces the standby and then the normal route from
// it. Each host's status says where the routes come from.
func TestLabMetadataMigration(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	scDo(t, "mapping", os.WriteFile(mp, []byte(scMapping), 0o644)) // names web, pinned, big, cold: not meta
	scDo(t, "start virtbgp", l.StartVirtbgpAll(ctx, vblab.VirtbgpConfig{Mapping: mp, MappingExtra: metaConfig}))
	mon, err := l.MonitorRoutes(ctx)
	scDo(t, "route monitor", err)
	defer mon.Close()
	m := &scMigLab{l: l, mon: mon, ev: map[*vblab.Host]*scEvents{}}
	for _, h := range l.Hosts() {
		m.ev[h] = scWatchEvents(ctx, t, h)
	}
	A, B := l.A, l.B
	scReset(ctx, t, l)

	scDo(t, "define", A.DefineGuest(ctx, vblab.Guest{Name: metaVM}))
	scDo(t, "start", A.StartGuest(ctx, metaVM))
	_, err = A.Virsh(ctx, "metadata", metaVM, "--uri", mapping.MetadataNS, "--key", mapping.MetadataKey,
		"--set", metaElement, "--live", "--config")
	scDo(t, "virsh metadata --set --live --config", err)
	scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{metaVM: A})
	metaSource(ctx, t, A)

	o := vblab.MigrateOptions{Persistent: true, UndefineSource: true}
	m.migrate(ctx, t, metaVM, A, B, o, nil)
	scDefined(ctx, t, B, A, metaVM)
	metaSource(ctx, t, B)
	m.migrate(ctx, t, metaVM, B, A, o, nil)
	scDefined(ctx, t, A, B, metaVM)
	metaSource(ctx, t, A)
	t.Logf("worst delay from the destination's resume to a ToR's kernel switching: %v", m.maxDelay)
}

// metaSource checks that host h's status has the guest's 2 routes from
// its virtbgp metadata, without problem.
func metaSource(ctx context.Context, t *testing.T, h *vblab.Host) {
	t.Helper()
	ctl := control.Client{Path: h.VirtbgpSocket()}
	err := vblab.Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		r, err := ctl.Status(ctx)
		if err != nil {
			return err
		}
		for _, d := range r.Domains {
			if d.Name == metaVM {
				if d.Source != status.SourceMetadata || d.Origin != mapping.MetadataNS || d.Routes != 2 || d.Problem != "" || d.VM != "" {
					return fmt.Errorf("status of %s on %s: %+v", metaVM, h.Name, d)
				}
				return nil
			}
		}
		return fmt.Errorf("no %s in the status of %s", metaVM, h.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
	if log, err := os.ReadFile(h.VirtbgpLogPath()); err == nil && strings.Contains(string(log), "domain metadata rejected") {
		t.Errorf("%s logged a rejected element", h.Name)
	}
}
