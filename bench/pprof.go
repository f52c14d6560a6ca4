package bench

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Bucket is a share of a CPU profile: the cumulative time of one function
// (everything it and its callees ran).
type Bucket struct {
	// Name says what the function stands for ("mapping parse").
	Name string
	// Func is the function's full name as pprof prints it
	// ("github.com/virtbgp/virtbgp/mapping.parseChunks.func1").
	Func string
}

// Share is a bucket's time in a profile.
type Share struct {
	Bucket
	CPU time.Duration
}

var totalSamples = regexp.MustCompile(`Total samples = (\S+)`)

// ProfileShares reads a CPU profile with `go tool pprof -top -cum` and
// returns each bucket's cumulative time (0 for a function that did not
// run) and the profile's total.
func ProfileShares(ctx context.Context, profile string, buckets []Bucket) (shares []Share, total time.Duration, err error) {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=100000", profile).CombinedOutput()
	if err != nil {
		return nil, 0, fmt.Errorf("pprof %s: %v: %s", profile, err, out)
	}
	return parseTop(string(out), buckets)
}

// parseTop reads `pprof -top -cum` output:
//
//	Duration: 2.69s, Total samples = 790ms (29.38%)
//	      flat  flat%   sum%        cum   cum%
//	         0     0%     0%      210ms 26.58%  github.com/osrg/gobgp/v3/pkg/server.(*BgpServer).Serve
func parseTop(out string, buckets []Bucket) ([]Share, time.Duration, error) {
	m := totalSamples.FindStringSubmatch(out)
	if m == nil {
		return nil, 0, fmt.Errorf("pprof: no total in %q", firstLines(out, 5))
	}
	total, err := time.ParseDuration(m[1])
	if err != nil {
		return nil, 0, fmt.Errorf("pprof: total %q: %w", m[1], err)
	}
	cum := map[string]time.Duration{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[4], "%") {
			continue
		}
		d, err := time.ParseDuration(f[3])
		if err != nil {
			continue // the header
		}
		cum[strings.Join(f[5:], " ")] = d
	}
	shares := make([]Share, len(buckets))
	for i, b := range buckets {
		shares[i] = Share{Bucket: b, CPU: cum[b.Func]}
	}
	return shares, total, nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
