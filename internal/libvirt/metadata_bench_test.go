package libvirt

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/libvirttest"
	"github.com/virtbgp/virtbgp/mapping"
)

// BenchmarkDomainMetadata measures what the metadata read adds to the read
// of one domain on a hint (Adapter.Domain), on test:///default: without
// metadata; with both elements enabled and the cache valid (an event that
// cannot change the metadata); and with the cache stale (a started or
// metadata-changed event: two GetMetadata calls and the parses); each on
// the in-process test:///default and on a libvirtd of its own (the test
// driver behind a UNIX socket, as qemu:///system is: every call an RPC).
func BenchmarkDomainMetadata(b *testing.B) {
	dir := b.TempDir()
	libvirttest.Start(b, dir).WaitAnswering(b)
	for _, bc := range []struct {
		name  string
		uri   string
		meta  bool
		stale bool
	}{
		{"inprocess/off", testURI, false, false}, {"inprocess/cached", testURI, true, false}, {"inprocess/stale", testURI, true, true},
		{"libvirtd/off", libvirttest.URI(dir), false, false}, {"libvirtd/cached", libvirttest.URI(dir), true, false}, {"libvirtd/stale", libvirttest.URI(dir), true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var opts []Option
			if bc.meta {
				opts = append(opts, WithMetadata(testMetaConfig()))
			}
			a, _ := startAdapter(b, bc.uri, slog.LevelInfo, opts...)
			c, err := lv.NewConnect(bc.uri)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			dom, err := c.DomainCreateXML(domainXML(strings.ReplaceAll("vbgp-bench-"+bc.name, "/", "-")), 0)
			if err != nil {
				b.Fatal(err)
			}
			defer dom.Free()
			defer dom.Destroy()
			if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, `<vm med="10" communities="65001:1"><ip prefix="198.51.100.1"/><ip prefix="2001:db8::1"/></vm>`,
				mapping.MetadataKey, mapping.MetadataNS, lv.DOMAIN_AFFECT_LIVE); err != nil {
				b.Fatal(err)
			}
			uuid, _ := dom.GetUUIDString()
			uuid = strings.ToLower(uuid)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if bc.stale {
					a.meta.touch(uuid, false)
				}
				d, found, err := a.Domain(ctx, uuid)
				if err != nil || !found || (bc.meta && (d.Claims == nil || len(d.Claims.Metadata.Routes) != 2)) {
					b.Fatalf("Domain: %+v %v %v", d, found, err)
				}
			}
		})
	}
}
