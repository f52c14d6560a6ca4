package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// sourcesHealthConfig is mapping.metadata and mapping.nova with the
// operator's checks: a tcp check of svc for the element's IPs that declare
// none, an http check of svc for every Nova route. The operator's checks
// are trusted: their targets are the service's address, not {ip}.
func sourcesHealthConfig(svc *service) string {
	return fmt.Sprintf(`  metadata:
    enabled: true
    allowed-prefixes: [198.51.100.0/24]
    health:
      defaults: {checks: [{type: tcp, address: "%s", interval: 200ms, timeout: 150ms, rise: 2, fall: 3}]}
  nova:
    enabled: true
    allowed-prefixes: [203.0.113.0/24]
    health: {checks: [{type: http, url: "http://%s/health", body: ready, interval: 200ms, timeout: 150ms, rise: 2, fall: 3}]}
`, svc.addr, svc.addr)
}

// TestHealthChecksFromSources runs the daemon on test:///default with
// in-process GoBGP ToRs and a real service on the loopback, the routes
// from the domains' metadata only: a route of virtbgp's element follows
// the operator's default check (mapping.metadata.health.defaults), a
// route of Nova's element the operator's Nova check (mapping.nova.health),
// each withdrawn when its own check fails and back after rise; an
// element's own check of an address other than {ip} is refused, in
// status, and its route never announced while the others are.
func TestHealthChecksFromSources(t *testing.T) {
	svc := startService(t)
	l := startLabSources(t, "test:///default", "version: 1\nvms: {}\n", sourcesHealthConfig(svc))
	meta := l.define(t, "hs-meta", "")
	do(t, "create hs-meta", meta.Create())
	do(t, "set virtbgp metadata", meta.SetMetadata(lv.DOMAIN_METADATA_ELEMENT,
		fmt.Sprintf(`<vm><ip prefix="198.51.100.10"/><ip prefix="198.51.100.11"><health><check type="tcp" address="%s"/></health></ip></vm>`, svc.addr),
		mapping.MetadataKey, mapping.MetadataNS, lv.DOMAIN_AFFECT_LIVE))
	nova := l.define(t, "hs-nova", "")
	do(t, "create hs-nova", nova.Create())
	do(t, "set nova metadata", nova.SetMetadata(lv.DOMAIN_METADATA_ELEMENT,
		`<instance><ports><port uuid="567a4527-b0e4-4d0a-bcc2-71fda37897f7"><ip type="fixed" address="203.0.113.10" ipVersion="4"/></port></ports></instance>`,
		"nova", mapping.NovaNS, lv.DOMAIN_AFFECT_LIVE))
	l.waitRIB(t, l.ebgp, "198.51.100.10/32", "203.0.113.10/32")

	// The element's own check of another address: refused, in status.
	testutil.Eventually(t, 5*time.Second, func() string {
		rep, err := l.d.Report(l.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range rep.Domains {
			if d.Name == "hs-meta" {
				if d.Problem != status.ProblemClaimsRefused || len(d.Refused) != 1 || d.Refused[0].Prefix != "198.51.100.11/32" ||
					!strings.Contains(d.Refused[0].Reason, "the host must be {ip}") {
					return fmt.Sprintf("status of hs-meta: %+v", d)
				}
				return ""
			}
		}
		return "no hs-meta in status"
	})

	t.Run("the service answers 503: Nova's http check withdraws, the tcp check keeps", func(t *testing.T) {
		svc.ok.Store(false)
		l.waitRIB(t, l.ebgp, "198.51.100.10/32")
	})
	t.Run("the service stops: the element's route goes too", func(t *testing.T) {
		svc.stop()
		l.waitRIB(t, l.ebgp)
	})
	t.Run("the service is back: both after rise", func(t *testing.T) {
		svc.ok.Store(true)
		svc.start(t)
		l.waitRIB(t, l.ebgp, "198.51.100.10/32", "203.0.113.10/32")
	})
}
