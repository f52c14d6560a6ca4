package status

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// startServer starts a real Server on a free loopback port and stops it at
// the end of the test.
func startServer(t *testing.T, src Source, m *Metrics) *Server {
	t.Helper()
	s := NewServer("127.0.0.1:0", src, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

var client = &http.Client{Timeout: 10 * time.Second}

// do sends method to the Server's path and returns status, headers, body.
func do(t *testing.T, s *Server, method, path string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.Addr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// blockingSource answers only when the test ends, whatever its context
// says: a main loop that is stuck. called is closed on the first call.
func blockingSource(t *testing.T) (src Source, called <-chan struct{}) {
	release, c := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	t.Cleanup(func() { close(release) })
	return func(context.Context) (Report, error) {
		if once.CompareAndSwap(false, true) {
			close(c)
		}
		<-release
		return Report{}, nil
	}, c
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	want := sampleReport()
	s := startServer(t, staticSource(want), nil)

	code, h, body := do(t, s, http.MethodGet, "/status")
	if code != http.StatusOK {
		t.Fatalf("GET /status = %d %s", code, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if cc := h.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if !strings.HasPrefix(body, "{\n  \"version\": \"1.4.0\",\n") {
		t.Errorf("body is not indented JSON:\n%s", body)
	}
	var got Report
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode /status: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("/status does not round-trip:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestStatusSourceError(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(context.Context) (Report, error) { return Report{}, errors.New("daemon stopping") }, nil)
	code, _, body := do(t, s, http.MethodGet, "/status")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "daemon stopping") {
		t.Errorf("GET /status = %d %q, want 503 with the error", code, body)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	m := NewMetrics()
	s := startServer(t, staticSource(sampleReport()), m)
	m.Reconciled(2*time.Millisecond, 5, true)
	m.Reconciled(2*time.Millisecond, 5, false)
	m.EventApplied(3 * time.Millisecond)
	m.ReloadResult(false, time.Unix(1749042000, 0))

	code, h, body := do(t, s, http.MethodGet, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", code, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		lines[l] = true
	}
	for _, want := range []string{
		`virtbgp_status_source_up 1`,
		`virtbgp_build_info{goversion="go1.26.8",revision="0123456789ab",version="1.4.0"} 1`,
		`virtbgp_ready 1`,
		`virtbgp_libvirt_connected 1`,
		`virtbgp_drain_state{state="none"} 1`,
		`virtbgp_peer_up{asn="65000",peer="198.18.0.1"} 1`,
		`virtbgp_peer_up{asn="65010",peer="198.18.0.5"} 0`,
		`virtbgp_peer_routes_sent{peer="2001:db8:ff::1"} 5`,
		`virtbgp_routes_announced{family="ipv4"} 4`,
		`virtbgp_routes_announced{family="ipv6"} 1`,
		`virtbgp_domains{state="paused"} 2`,
		`virtbgp_mapping_generation 7`,
		`virtbgp_mapping_vms 12`,
		`virtbgp_mapping_routes 31`,
		`virtbgp_mapping_reload_success 0`,
		`virtbgp_mapping_reload_timestamp_seconds 1.749042e+09`,
		`virtbgp_mapping_reloads_total{result="error"} 1`,
		`virtbgp_mapping_reloads_total{result="ok"} 0`,
		`virtbgp_reconcile_duration_seconds_count 2`,
		`virtbgp_reconcile_errors_total 1`,
		`virtbgp_event_to_announce_seconds_bucket{le="0.0025"} 0`,
		`virtbgp_event_to_announce_seconds_bucket{le="0.005"} 1`,
		`virtbgp_event_to_announce_seconds_count 1`,
		`# TYPE go_goroutines gauge`,
		`# TYPE process_start_time_seconds gauge`,
		`promhttp_metric_handler_requests_in_flight 1`,
	} {
		if !lines[want] {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// serveFake serves one request with the Server's handler, in memory, so
// that it runs on testing/synctest's fake clock; it returns the answer and
// how long it took.
func serveFake(s *Server, method, path string) (*httptest.ResponseRecorder, time.Duration) {
	rec := httptest.NewRecorder()
	start := time.Now()
	s.srv.Handler.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec, time.Since(start)
}

// A stuck main loop costs the state series, not /metrics: the scrape waits
// SourceTimeout for them (on the fake clock).
func TestMetricsSourceStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, _ := blockingSource(t)
		s := NewServer("127.0.0.1:0", src, nil, nil)
		rec, took := serveFake(s, http.MethodGet, "/metrics")
		code, body := rec.Code, rec.Body.String()
		if code != http.StatusOK {
			t.Fatalf("GET /metrics = %d %s", code, body)
		}
		if took != SourceTimeout {
			t.Errorf("scrape took %v, want SourceTimeout, %v", took, SourceTimeout)
		}
		if !strings.Contains(body, "\nvirtbgp_status_source_up 0\n") || strings.Contains(body, "virtbgp_ready") ||
			!strings.Contains(body, "virtbgp_reconcile_duration_seconds_count 0") {
			t.Errorf("/metrics with a stuck source:\n%s", body)
		}
	})
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	t.Run("alive", func(t *testing.T) {
		t.Parallel()
		// Not ready yet, but alive.
		s := startServer(t, staticSource(freshReport()), nil)
		code, h, body := do(t, s, http.MethodGet, "/healthz")
		if code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET /healthz = %d %q, want 200 ok", code, body)
		}
		if ct := h.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type = %q", ct)
		}
		if code, _, body := do(t, s, http.MethodHead, "/healthz"); code != http.StatusOK || body != "" {
			t.Errorf("HEAD /healthz = %d %q, want 200 and no body", code, body)
		}
	})
	t.Run("stuck", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			src, _ := blockingSource(t)
			s := NewServer("127.0.0.1:0", src, nil, nil)
			rec, took := serveFake(s, http.MethodGet, "/healthz")
			if code, body := rec.Code, rec.Body.String(); code != http.StatusServiceUnavailable || !strings.Contains(body, "deadline exceeded") {
				t.Errorf("GET /healthz = %d %q, want 503 deadline exceeded", code, body)
			}
			if took != SourceTimeout {
				t.Errorf("answered after %v, want SourceTimeout, %v", took, SourceTimeout)
			}
		})
	})
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	s := startServer(t, func(context.Context) (Report, error) {
		r := freshReport()
		r.Ready = ready.Load()
		r.Libvirt.Connected = r.Ready
		return r, nil
	}, nil)

	code, _, body := do(t, s, http.MethodGet, "/readyz")
	if code != http.StatusServiceUnavailable ||
		body != "not ready: the first full sync from libvirt has not been applied yet; libvirt is not connected (qemu:///system)\n" {
		t.Errorf("before the first sync: GET /readyz = %d %q", code, body)
	}
	ready.Store(true)
	if code, _, body := do(t, s, http.MethodGet, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("after the first sync: GET /readyz = %d %q, want 200 ok", code, body)
	}
}

func TestReadyzSourceError(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(context.Context) (Report, error) { return Report{}, errors.New("main loop stopped") }, nil)
	if code, _, body := do(t, s, http.MethodGet, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "main loop stopped") {
		t.Errorf("GET /readyz = %d %q, want 503 with the error", code, body)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	t.Parallel()
	s := startServer(t, staticSource(sampleReport()), nil)
	for _, path := range []string{"/", "/status/", "/statusx", "/metrics/foo", "/debug/pprof/", "/favicon.ico"} {
		if code, _, _ := do(t, s, http.MethodGet, path); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, code)
		}
	}
	for _, path := range []string{"/status", "/metrics", "/healthz", "/readyz"} {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			code, h, _ := do(t, s, method, path)
			if code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s = %d, want 405", method, path, code)
			}
			if allow := h.Get("Allow"); !strings.Contains(allow, "GET") {
				t.Errorf("%s %s: Allow = %q, want GET in it", method, path, allow)
			}
		}
	}
}

func TestServerLimits(t *testing.T) {
	s := NewServer("127.0.0.1:0", staticSource(Report{}), nil, nil)
	h := s.srv
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": h.ReadHeaderTimeout,
		"ReadTimeout":       h.ReadTimeout,
		"WriteTimeout":      h.WriteTimeout,
		"IdleTimeout":       h.IdleTimeout,
	} {
		if d <= 0 || d > 2*time.Minute {
			t.Errorf("%s = %v, want set and short", name, d)
		}
	}
	if h.WriteTimeout <= SourceTimeout {
		t.Errorf("WriteTimeout %v cuts off a Source that takes SourceTimeout %v", h.WriteTimeout, SourceTimeout)
	}
	if h.ReadHeaderTimeout > h.ReadTimeout {
		t.Errorf("ReadHeaderTimeout %v > ReadTimeout %v", h.ReadHeaderTimeout, h.ReadTimeout)
	}
	if h.MaxHeaderBytes <= 0 || h.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d, want set and small", h.MaxHeaderBytes)
	}
	if h.ErrorLog == nil {
		t.Error("ErrorLog not set: net/http errors would bypass slog")
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	s := NewServer("127.0.0.1:0", staticSource(Report{}), nil, nil)
	if a := s.Addr(); a != "" {
		t.Errorf("Addr before Start = %q, want empty", a)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown before Start: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer s.Shutdown(context.Background())
	addr := s.Addr()
	if _, port, _ := net.SplitHostPort(addr); port == "0" || port == "" {
		t.Errorf("Addr = %q, want the port chosen", addr)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}

	for _, bad := range []string{"", "127.0.0.1:99999", "not-an-address", addr} {
		err := NewServer(bad, staticSource(Report{}), nil, nil).Start()
		if err == nil || !strings.HasPrefix(err.Error(), "start status endpoint: ") {
			t.Errorf("Start on %q: err = %v, want a start status endpoint error", bad, err)
		}
	}
	var opErr *net.OpError
	if err := NewServer(addr, staticSource(Report{}), nil, nil).Start(); !errors.As(err, &opErr) {
		t.Errorf("Start on a busy port: %v does not wrap the *net.OpError", err)
	}
}

// Shutdown does not wait for a request stuck on the daemon's main loop.
func TestShutdownPrompt(t *testing.T) {
	t.Parallel()
	for name, honoursCtx := range map[string]bool{"source honours ctx": true, "source ignores ctx": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			stuck, called := blockingSource(t)
			src := stuck
			if honoursCtx {
				c := make(chan struct{})
				called = c
				src = func(ctx context.Context) (Report, error) {
					close(c)
					<-ctx.Done()
					return Report{}, ctx.Err()
				}
			}
			s := NewServer("127.0.0.1:0", src, nil, nil)
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			inFlight := make(chan error, 1)
			go func() {
				resp, err := client.Get("http://" + s.Addr() + "/status")
				if err == nil {
					resp.Body.Close()
				}
				inFlight <- err
			}()
			<-called

			// Shutdown cancels the request: without that, it would wait for
			// the request's SourceTimeout, past its own deadline.
			ctx, cancel := context.WithTimeout(context.Background(), SourceTimeout/2)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown with a request stuck on the source: %v", err)
			}
			select {
			case <-inFlight:
			case <-time.After(time.Second):
				t.Error("the in-flight request did not end")
			}
			if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
				t.Error("still listening after Shutdown")
			}
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("second Shutdown: %v", err)
			}
		})
	}
}

// Shutdown whose context ends first closes everything and says so.
func TestShutdownContextExpired(t *testing.T) {
	t.Parallel()
	s := NewServer("127.0.0.1:0", staticSource(sampleReport()), nil, nil)
	accepted := make(chan struct{}, 1)
	s.srv.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			accepted <- struct{}{}
		}
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	// An open connection that has not sent a full request is not idle:
	// Shutdown waits for it until its context ends.
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /status HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	<-accepted // the server tracks it (until it has read a whole request, it is not idle)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline exceeded", err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Error("still listening after Shutdown")
	}
}
