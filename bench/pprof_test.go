package bench

import (
	"testing"
	"time"
)

func TestParseTop(t *testing.T) {
	out := `File: virtbgp
Type: cpu
Duration: 2.69s, Total samples = 1.25s (46.47%)
Showing nodes accounting for 790ms, 100% of 790ms total
      flat  flat%   sum%        cum   cum%
         0     0%     0%      210ms 26.58%  github.com/osrg/gobgp/v3/pkg/server.(*BgpServer).Serve
      10ms  1.27%  1.27%      1.05s 24.05%  github.com/virtbgp/virtbgp/mapping.parseChunks.func1
`
	shares, total, err := parseTop(out, []Bucket{
		{"GoBGP", "github.com/osrg/gobgp/v3/pkg/server.(*BgpServer).Serve"},
		{"parse", "github.com/virtbgp/virtbgp/mapping.parseChunks.func1"},
		{"absent", "main.nothing"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != 1250*time.Millisecond {
		t.Errorf("total %v, want 1.25s", total)
	}
	for i, want := range []time.Duration{210 * time.Millisecond, 1050 * time.Millisecond, 0} {
		if shares[i].CPU != want {
			t.Errorf("%s: %v, want %v", shares[i].Name, shares[i].CPU, want)
		}
	}
	if _, _, err := parseTop("no profile here", nil); err == nil {
		t.Error("no error for output without a total")
	}
}
