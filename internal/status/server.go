package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source returns the daemon's current Report. The daemon's main loop answers
// it, so an answer also proves that the loop is alive. It should return
// promptly once ctx is done; the Server stops waiting for it then anyway.
type Source func(ctx context.Context) (Report, error)

// SourceTimeout is how long the Server waits for its Source, per request
// and per scrape; /healthz fails when the Source takes longer.
const SourceTimeout = 2 * time.Second

// Limits of the HTTP server: a slow or stuck client cannot hold a
// connection or a goroutine for long. WriteTimeout leaves room for a Source
// that takes the whole SourceTimeout.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 15 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// maxScrapes bounds concurrent /metrics requests, each of which asks
	// the daemon's main loop for a Report.
	maxScrapes = 4
	// maxStatus bounds concurrent /status requests: each encodes and
	// sends a report that is megabytes with tens of thousands of routes.
	// More get 503 with Retry-After at once.
	maxStatus = 4
	// statusMaxAge is how old a report /status may serve: parallel
	// clients share one report, and so one question to the main loop,
	// per statusMaxAge at most.
	statusMaxAge = time.Second
)

// Server is virtbgp's optional HTTP status endpoint:
//
//	GET /status   the Report as indented JSON
//	GET /metrics  Prometheus metrics (the Metrics registry)
//	GET /healthz  200 "ok" if the daemon's main loop answers within
//	              SourceTimeout, else 503
//	GET /readyz   200 "ok" once the first full sync from libvirt was
//	              applied (Report.Ready), else 503 with the reason
//
// Any other path is 404; any method other than GET (and HEAD, which HTTP
// serves like GET without a body) is 405.
//
// The endpoint has no authentication and tells anyone who can reach it the
// host's VMs, IPs and peers: it is meant to listen on loopback (for a local
// Prometheus agent, node exporter proxy or an operator on the host). Which
// address it listens on, and whether it runs at all, is the config's
// decision (status.listen).
type Server struct {
	// Health, if set before Start, is what /healthz asks instead of a
	// whole Report: a round trip through the daemon's loops that does not
	// grow with the routes, so that /healthz does not wait behind reports
	// being built and sent (issue 17, finding 7). It must return promptly
	// once ctx is done.
	Health func(ctx context.Context) error

	src Source
	m   *Metrics
	log *slog.Logger
	srv *http.Server

	snap        snapshots     // the reports the handlers share
	statusSlots chan struct{} // a token per /status request in flight

	mu      sync.Mutex
	ln      net.Listener
	served  chan struct{} // closed when Serve has returned
	started bool
}

// NewServer builds a Server that will listen on addr (host:port; port 0
// picks a free port), answer from src and serve m's registry at /metrics.
// It also makes m read its state series from src, sharing the report
// being made (Server.report). A nil m gets a fresh
// NewMetrics, a nil log discards. Nothing listens before Start.
func NewServer(addr string, src Source, m *Metrics, log *slog.Logger) *Server {
	if m == nil {
		m = NewMetrics()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{src: src, m: m, log: log, statusSlots: make(chan struct{}, maxStatus)}
	s.snap.src = src
	// Scrapes share the report being made, with /status and each other:
	// parallel scrapes cost the main loop one report.
	m.setSource(s.report, SourceTimeout, log)

	reg := m.Registry()
	metrics := promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg,
		MaxRequestsInFlight: maxScrapes,
	}))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)

	// Shutdown cancels the requests in flight, so that one waiting for a
	// main loop that is itself stopping does not hold Shutdown up.
	base, cancel := context.WithCancel(context.Background())
	s.snap.base = base
	s.srv = &http.Server{
		Addr:              addr,
		Handler:           noStore(mux),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	s.srv.RegisterOnShutdown(cancel)
	return s
}

// Start listens on the Server's address and serves in the background. It
// fails, without serving, if the address is empty or cannot be listened
// on, or if the Server was started before.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("start status endpoint: already started")
	}
	if s.srv.Addr == "" {
		return errors.New("start status endpoint: no listen address")
	}
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return fmt.Errorf("start status endpoint: %w", err)
	}
	s.started, s.ln, s.served = true, ln, make(chan struct{})
	s.log.Info("status endpoint listening", "addr", ln.Addr().String())
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("status endpoint stopped serving", "error", err)
		}
	}()
	return nil
}

// Addr is the address the Server listens on (with the port chosen for port
// 0), or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops listening, cancels the requests in flight and waits for
// them until ctx ends; then it closes what is left and returns ctx's error.
// It is a no-op on a Server that was never started.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	started, served := s.started, s.served
	s.mu.Unlock()
	if !started {
		return nil
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		if cerr := s.srv.Close(); cerr != nil {
			s.log.Warn("cannot close the status endpoint", "error", cerr)
		}
		return fmt.Errorf("shut down status endpoint: %w", err)
	}
	<-served
	return nil
}

// report returns a Report made after this call began (the main loop
// answered, within SourceTimeout): the one being made if there is one,
// else a new one.
func (s *Server) report(ctx context.Context) (Report, error) {
	sn, err := s.snap.get(ctx, 0)
	if err != nil {
		return Report{}, err
	}
	return sn.r, nil
}

// healthy asks Health, or for want of it a Report, within SourceTimeout.
func (s *Server) healthy(ctx context.Context) error {
	if s.Health == nil {
		_, err := s.report(ctx)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, SourceTimeout)
	defer cancel()
	_, err := callSource(ctx, func(ctx context.Context) (Report, error) { return Report{}, s.Health(ctx) })
	return err
}

func (s *Server) handleStatus(w http.ResponseWriter, req *http.Request) {
	select {
	case s.statusSlots <- struct{}{}:
		defer func() { <-s.statusSlots }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("status busy: %d requests in flight, try again", maxStatus), http.StatusServiceUnavailable)
		return
	}
	sn, err := s.snap.get(req.Context(), statusMaxAge)
	if err != nil {
		s.log.Warn("status unavailable", "path", "/status", "error", err)
		http.Error(w, "status unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	b, err := sn.encoded()
	if err != nil {
		s.log.Error("cannot encode the status report", "error", err)
		http.Error(w, "encode report: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Server) handleHealthz(w http.ResponseWriter, req *http.Request) {
	if err := s.healthy(req.Context()); err != nil {
		s.log.Warn("status unavailable", "path", "/healthz", "error", err)
		http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeText(w, "ok\n")
}

func (s *Server) handleReadyz(w http.ResponseWriter, req *http.Request) {
	r, err := s.report(req.Context())
	if err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if !r.Ready {
		http.Error(w, "not ready: "+notReadyReason(r), http.StatusServiceUnavailable)
		return
	}
	writeText(w, "ok\n")
}

// notReadyReason says why a Report is not Ready.
func notReadyReason(r Report) string {
	why := "the first full sync from libvirt has not been applied yet"
	if !r.Libvirt.Connected {
		why += "; libvirt is not connected"
		if r.Libvirt.URI != "" {
			why += " (" + r.Libvirt.URI + ")"
		}
	}
	return why
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(s))
}

// noStore marks every answer as a point-in-time view not to be cached.
func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, req)
	})
}

// callSource calls src and returns its answer, or ctx's error as soon as
// ctx ends even if src does not honour ctx (src's late answer is dropped).
func callSource(ctx context.Context, src Source) (Report, error) {
	if src == nil {
		return Report{}, errors.New("read the daemon's state: no source")
	}
	type answer struct {
		r   Report
		err error
	}
	c := make(chan answer, 1) // src never blocks on sending its late answer
	go func() {
		r, err := src(ctx)
		c <- answer{r, err}
	}()
	select {
	case a := <-c:
		if a.err != nil {
			return Report{}, fmt.Errorf("read the daemon's state: %w", a.err)
		}
		return a.r, nil
	case <-ctx.Done():
		return Report{}, fmt.Errorf("read the daemon's state: no answer: %w", context.Cause(ctx))
	}
}

// promLogger sends promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

// Println implements promhttp.Logger.
func (l promLogger) Println(v ...any) { l.log.Warn("metrics handler error", "error", fmt.Sprint(v...)) }
