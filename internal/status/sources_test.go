package status

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// metadataReport has a domain whose routes come from metadata with two
// refused claims, one whose element is bad, and a Nova one.
func metadataReport() Report {
	r := Report{Version: "x", Time: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)}
	r.Domains = []Domain{
		{Name: "meta-1", State: "running", Source: SourceMetadata, Origin: "https://virtbgp.github.io/xmlns/virtbgp/1", Routes: 1,
			Problem: ProblemClaimsRefused, Refused: []Refusal{
				{Prefix: "10.1.2.3/32", Reason: "outside the prefixes allowed to this source"},
				{Prefix: "192.0.2.20/32", Reason: `the mapping file gives this prefix to "db-01"`},
			}},
		{Name: "meta-2", State: "running", Source: SourceMetadata, Problem: ProblemMetadataError,
			MetadataError: `domain "meta-2": virtbgp metadata:1:5: vm: med: want an integer from 0 to 4294967295, got "-1"`},
		{Name: "nova-1", State: "running", Source: SourceNova, Origin: "http://openstack.org/xmlns/libvirt/nova/1.1", Routes: 2, Ignored: ""},
	}
	return r
}

// TestMetadataMetrics: virtbgp_metadata_errors and virtbgp_claims_refused
// count the report's domains by source.
func TestMetadataMetrics(t *testing.T) {
	m := NewMetrics()
	m.setSource(staticSource(metadataReport()), time.Second, slog.New(slog.DiscardHandler))
	want := `
# HELP virtbgp_claims_refused Prefixes that domains on this host claim in their metadata and that are not announced (outside the allowed prefixes, the mapping file's, another domain's), by source.
# TYPE virtbgp_claims_refused gauge
virtbgp_claims_refused{source="metadata"} 2
virtbgp_claims_refused{source="nova"} 0
# HELP virtbgp_metadata_errors Domains on this host whose metadata element (virtbgp's or Nova's, the source label) has a problem: nothing is announced from it.
# TYPE virtbgp_metadata_errors gauge
virtbgp_metadata_errors{source="metadata"} 1
virtbgp_metadata_errors{source="nova"} 0
`
	if err := testutil.CollectAndCompare(m.state, strings.NewReader(want), "virtbgp_claims_refused", "virtbgp_metadata_errors"); err != nil {
		t.Error(err)
	}
}

// TestMetadataTable: the table's Source column says where the routes come
// from and the Note column the problem.
func TestMetadataTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, metadataReport()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"metadata https://virtbgp.github.io/xmlns/virtbgp/1  10.1.2.3/32 REFUSED: outside the prefixes allowed to this source; 192.0.2.20/32 REFUSED: the mapping file gives this prefix to \"db-01\"",
		`METADATA ERROR: domain "meta-2": virtbgp metadata:1:5: vm: med:`,
		"nova http://openstack.org/xmlns/libvirt/nova/1.1",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
