package status

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 17, finding 7: 100 parallel /status clients (20k routes, a 4.2 MB
// report) drove /healthz to 503 on 13 of 21 checks, because each asked the
// daemon's main loop for its own report. The source here stands for the
// main loop: one question at a time, 20 ms each. With the clients sharing
// reports, the loop is asked at most a few times per second whatever the
// number of clients, and every /healthz check answers 200 throughout.
func TestStatusUnderParallelLoad(t *testing.T) {
	routes := make([]Route, 20000)
	for i := range routes {
		routes[i] = Route{Prefix: fmt.Sprintf("10.%d.%d.%d/32", i>>16, (i>>8)&255, i&255), NextHop: "self", Domain: "vm", Source: SourceFile}
	}
	var loop sync.Mutex // the main loop answers one question at a time
	var asked atomic.Int64
	src := func(ctx context.Context) (Report, error) {
		loop.Lock()
		defer loop.Unlock()
		asked.Add(1)
		time.Sleep(20 * time.Millisecond) // building the report in the loop
		return Report{Version: "test", Routes: routes}, nil
	}
	s := startServer(t, src, nil)
	base := "http://" + s.Addr()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}, Timeout: 30 * time.Second}

	const clients, perClient = 100, 3
	var wg sync.WaitGroup
	var ok, busy, other atomic.Int64
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for range perClient {
				resp, err := client.Get(base + "/status")
				if err != nil {
					other.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"10.0.78.31/32"`):
					ok.Add(1)
				case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "1" && strings.Contains(string(body), "status busy"):
					busy.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	checks, failed := 0, 0
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		resp, err := client.Get(base + "/healthz")
		checks++
		if err != nil || resp.StatusCode != http.StatusOK {
			failed++
		}
		if err == nil {
			resp.Body.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	t.Logf("%d /status: %d ok, %d busy, %d other, in %s; the loop was asked %d times; /healthz failed %d of %d",
		clients*perClient, ok.Load(), busy.Load(), other.Load(), elapsed.Round(time.Millisecond), asked.Load(), failed, checks)
	if failed > 0 {
		t.Errorf("/healthz failed %d of %d checks under /status load", failed, checks)
	}
	if other.Load() > 0 || ok.Load() == 0 {
		t.Errorf("/status answers: %d ok, %d busy, %d other; want only full reports and busy answers", ok.Load(), busy.Load(), other.Load())
	}
	// At most one question per statusMaxAge for /status, plus one per
	// /healthz check.
	if max := int64(elapsed/statusMaxAge) + 1 + int64(checks); asked.Load() > max {
		t.Errorf("the loop was asked %d times in %s, want at most %d", asked.Load(), elapsed, max)
	}
}

// Issue 17, finding 11: the table says why a peer does not come up, as
// the JSON's last_error does.
func TestWriteTablePeerError(t *testing.T) {
	r := sampleReport()
	r.Peers = append(r.Peers, Peer{Address: "198.18.0.9", ASN: 65099, State: "active",
		LastError: "sent NOTIFICATION code 2(open) subcode 2(bad peer as): as number mismatch expected 65099, received 65000"})
	var b strings.Builder
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	want := "  198.18.0.9 does not come up: sent NOTIFICATION code 2(open) subcode 2(bad peer as): as number mismatch expected 65099, received 65000\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, b.String())
	}
	if strings.Count(b.String(), "does not come up") != 1 {
		t.Errorf("table names more than the one peer that does not come up:\n%s", b.String())
	}
}
