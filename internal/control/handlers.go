package control

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/manual"
)

// The kinds of listener.
const (
	kindUnix = "unix"
	kindTCP  = "tcp"
)

type connKey struct{}

// connInfo is what the server knows of a connection.
type connInfo struct {
	kind    string
	cred    cred
	credErr error
}

// access is what a caller may do.
type access int

const (
	accessRead access = iota + 1
	accessWrite
)

// caller is who made a request: who is "uid N", "token NAME" or "cert
// NAME", for logs and the manual routes' records.
type caller struct {
	who    string
	access access
	log    *slog.Logger
}

// endpoint is one route of the API.
type endpoint struct {
	method, path string
	op           string
	write        bool
	serve        func(s *Server, ctx context.Context, c *caller, r *http.Request) (any, error)
}

// endpoints are the API, /v1. docs/api/openapi.yaml describes the same
// (TestOpenAPIMatchesServer).
var endpoints = []endpoint{
	{"GET", "/v1/status", OpStatus, false, func(s *Server, ctx context.Context, _ *caller, _ *http.Request) (any, error) {
		return s.Handler.Status(ctx)
	}},
	{"GET", "/v1/peers", OpPeers, false, func(s *Server, ctx context.Context, _ *caller, _ *http.Request) (any, error) {
		r, err := s.Handler.Status(ctx)
		return r.Peers, err
	}},
	{"GET", "/v1/domains", OpDomains, false, func(s *Server, ctx context.Context, _ *caller, _ *http.Request) (any, error) {
		r, err := s.Handler.Status(ctx)
		return r.Domains, err
	}},
	{"GET", "/v1/routes", OpRoutes, false, func(s *Server, ctx context.Context, _ *caller, _ *http.Request) (any, error) {
		r, err := s.Handler.Status(ctx)
		return r.Routes, err
	}},
	{"POST", "/v1/drain", OpDrain, true, message((Handler).Drain)},
	{"POST", "/v1/undrain", OpUndrain, true, message((Handler).Undrain)},
	{"POST", "/v1/reload", OpReload, true, func(s *Server, ctx context.Context, _ *caller, r *http.Request) (any, error) {
		var req ReloadRequest
		if err := s.decode(r, &req, false); err != nil {
			return nil, err
		}
		reload := s.Handler.Reload
		if req.Force {
			reload = s.Handler.ReloadForce
		}
		msg, err := reload(ctx)
		return Message{Message: msg}, err
	}},
	{"GET", "/v1/manual-routes", OpManual, false, func(s *Server, ctx context.Context, _ *caller, _ *http.Request) (any, error) {
		rs, err := s.Handler.ManualRoutes(ctx)
		if rs == nil {
			rs = []manual.Route{}
		}
		return ManualRoutes{Routes: rs}, err
	}},
	{"POST", "/v1/manual-routes", OpAnnounce, true, func(s *Server, ctx context.Context, c *caller, r *http.Request) (any, error) {
		var req manual.Request
		if err := s.decode(r, &req, true); err != nil {
			return nil, err
		}
		return s.Handler.Announce(ctx, c.who, req)
	}},
	{"DELETE", "/v1/manual-routes/{prefix...}", OpWithdraw, true, func(s *Server, ctx context.Context, c *caller, r *http.Request) (any, error) {
		if err := s.decode(r, nil, false); err != nil {
			return nil, err
		}
		return s.Handler.Withdraw(ctx, c.who, r.PathValue("prefix"))
	}},
	{"GET", "/v1/maintenance", OpMaintenance, false, func(s *Server, ctx context.Context, _ *caller, _ *http.Request) (any, error) {
		es, err := s.Handler.Maintenance(ctx)
		if es == nil {
			es = []maintenance.Entry{}
		}
		return MaintenanceList{Entries: es}, err
	}},
	{"PUT", "/v1/maintenance/{domain}", OpMaintenanceOn, true, func(s *Server, ctx context.Context, c *caller, r *http.Request) (any, error) {
		var req maintenance.Request
		if err := s.decode(r, &req, false); err != nil {
			return nil, err
		}
		return s.Handler.MaintenanceOn(ctx, c.who, r.PathValue("domain"), req)
	}},
	{"DELETE", "/v1/maintenance/{domain}", OpMaintenanceOff, true, func(s *Server, ctx context.Context, c *caller, r *http.Request) (any, error) {
		if err := s.decode(r, nil, false); err != nil {
			return nil, err
		}
		q := r.URL.Query()
		for k := range q {
			if k != "ip" {
				return nil, &Error{Status: http.StatusBadRequest, Field: k, Message: fmt.Sprintf("%s: unknown query parameter (only ip)", k)}
			}
		}
		es, err := s.Handler.MaintenanceOff(ctx, c.who, r.PathValue("domain"), q.Get("ip"))
		return MaintenanceList{Entries: es}, err
	}},
}

// message serves drain and undrain.
func message(fn func(Handler, context.Context) (string, error)) func(*Server, context.Context, *caller, *http.Request) (any, error) {
	return func(s *Server, ctx context.Context, _ *caller, r *http.Request) (any, error) {
		if err := s.decode(r, nil, false); err != nil {
			return nil, err
		}
		msg, err := fn(s.Handler, ctx)
		return Message{Message: msg}, err
	}
}

// routes is the API's mux; anything else is 404 (or 405) with a JSON body.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	for _, ep := range endpoints {
		mux.HandleFunc(ep.method+" "+ep.path, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, ep) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, e := s.authenticate(r)
		if e != nil {
			s.fail(w, s.requestLog(r), "", e)
			return
		}
		_ = c
		for _, ep := range endpoints {
			if p, _, ok := strings.Cut(ep.path, "{"); ok && strings.HasPrefix(r.URL.Path, p) && len(r.URL.Path) > len(p) || ep.path == r.URL.Path {
				s.fail(w, s.requestLog(r), ep.op, Errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path))
				return
			}
		}
		s.fail(w, s.requestLog(r), "", Errorf(http.StatusNotFound, "no such endpoint: %s %s (see docs/api/openapi.yaml)", r.Method, r.URL.Path))
	})
	return mux
}

// requestLog is the server's log with the connection's identity.
func (s *Server) requestLog(r *http.Request) *slog.Logger {
	log := s.log()
	ci, _ := r.Context().Value(connKey{}).(*connInfo)
	switch {
	case ci == nil:
	case ci.kind == kindUnix && ci.credErr == nil:
		log = log.With("uid", ci.cred.uid, "gid", ci.cred.gid, "pid", ci.cred.pid)
	case ci.kind == kindTCP:
		log = log.With("remote", r.RemoteAddr)
	}
	return log
}

// serve runs one endpoint: authentication, authorization, rate limit, the
// Handler call with its timeout, the answer.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, ep endpoint) {
	c, e := s.authenticate(r)
	if e != nil {
		s.fail(w, s.requestLog(r), ep.op, e)
		return
	}
	log := c.log
	if ep.write && c.access < accessWrite {
		s.fail(w, log, ep.op, Errorf(http.StatusForbidden, "permission denied: %s is read-only", c.who))
		return
	}
	if ep.write && !s.limit.allow() {
		w.Header().Set("Retry-After", "1")
		s.fail(w, log, ep.op, Errorf(http.StatusTooManyRequests, "too many write calls: the limit is %d per second", s.limit.rate))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opTimeout())
	defer cancel()
	result, err := s.call(ctx, log, c, r, ep)
	if err != nil {
		s.fail(w, log, ep.op, asError(ep.op, err))
		return
	}
	if ep.write {
		log.Info("request served", "op", ep.op, "by", c.who, "result", summary(result))
	} else {
		log.Debug("request served", "op", ep.op, "by", c.who)
	}
	writeJSON(w, http.StatusOK, result)
}

// summary is what the log says of a write's result.
func summary(v any) string {
	switch v := v.(type) {
	case Message:
		return v.Message
	case manual.Route:
		return v.Prefix.String()
	case maintenance.Entry:
		return maintenanceSummary(v)
	case MaintenanceList:
		out := make([]string, len(v.Entries))
		for i, e := range v.Entries {
			out[i] = maintenanceSummary(e)
		}
		return strings.Join(out, ", ")
	}
	return ""
}

// maintenanceSummary names an entry in the log: the domain, and the route
// if only one.
func maintenanceSummary(e maintenance.Entry) string {
	if e.Prefix.IsValid() {
		return e.Domain + " " + e.Prefix.String()
	}
	return e.Domain
}

// call runs the endpoint; a panic in the Handler becomes an error.
func (s *Server) call(ctx context.Context, log *slog.Logger, c *caller, r *http.Request, ep endpoint) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("handler panicked", "op", ep.op, "panic", p, "stack", string(debug.Stack()))
			result, err = nil, Errorf(http.StatusInternalServerError, "internal error in %s: %v", ep.op, p)
		}
	}()
	return ep.serve(s, ctx, c, r)
}

// fail answers an error and logs it: refusals and bad requests at warn.
func (s *Server) fail(w http.ResponseWriter, log *slog.Logger, op string, e *Error) {
	switch {
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		log.Warn("client refused", "op", op, "reason", e.Message)
	case e.Status < 500:
		log.Warn("bad request", "op", op, "status", e.Status, "field", e.Field, "error", e.Message)
	default:
		log.Warn("request failed", "op", op, "status", e.Status, "error", e.Message)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="virtbgp"`)
	}
	writeJSON(w, e.Status, ErrorBody{Error: e.Message, Field: e.Field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: fmt.Sprintf("internal error: encode the result: %v", err)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// authenticate tells who made the request, or why it is refused: on the
// unix socket, root by SO_PEERCRED; on TCP, a verified client certificate
// or a bearer token (compared in constant time).
func (s *Server) authenticate(r *http.Request) (*caller, *Error) {
	ci, _ := r.Context().Value(connKey{}).(*connInfo)
	log := s.requestLog(r)
	if ci == nil {
		return nil, Errorf(http.StatusForbidden, "permission denied: unknown connection")
	}
	if ci.kind == kindUnix {
		switch {
		case ci.credErr != nil:
			log.Warn("cannot read the client's credentials", "error", ci.credErr)
			return nil, Errorf(http.StatusForbidden, "permission denied: cannot verify the client's credentials")
		case ci.cred.uid != 0 && s.ReadGroup != nil && inGroup(ci.cred, *s.ReadGroup):
			return &caller{who: fmt.Sprintf("uid %d", ci.cred.uid), access: accessRead, log: log}, nil
		case ci.cred.uid != 0:
			return nil, Errorf(http.StatusForbidden, "permission denied: the control socket is for root (you are uid %d)", ci.cred.uid)
		}
		return &caller{who: fmt.Sprintf("uid %d", ci.cred.uid), access: accessWrite, log: log}, nil
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		name := r.TLS.VerifiedChains[0][0].Subject.CommonName
		return &caller{who: "cert " + name, access: accessWrite, log: log.With("cert", name)}, nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, Errorf(http.StatusUnauthorized, "authentication required: send Authorization: Bearer TOKEN")
	}
	scheme, secret, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return nil, Errorf(http.StatusUnauthorized, "authentication required: the Authorization header must be \"Bearer TOKEN\"")
	}
	if t := s.token(secret); t != nil {
		a := accessRead
		if t.Write {
			a = accessWrite
		}
		return &caller{who: "token " + t.Name, access: a, log: log.With("token", t.Name)}, nil
	}
	return nil, Errorf(http.StatusUnauthorized, "authentication failed: unknown token")
}

// inGroup reports whether the client is in group: its gid (SO_PEERCRED),
// or one of its process's supplementary groups (/proc/PID/status; the
// process is connected, waiting for the answer).
func inGroup(c cred, group uint32) bool {
	if c.gid == group {
		return true
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.pid))
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
			for _, f := range strings.Fields(rest) {
				if g, err := strconv.ParseUint(f, 10, 32); err == nil && uint32(g) == group {
					return true
				}
			}
		}
	}
	return false
}

// token finds the token whose secret is secret, comparing with every
// token in constant time (SHA-256 sums, so that not even the length
// shows).
func (s *Server) token(secret string) *Token {
	var found *Token
	got := sha256.Sum256([]byte(secret))
	for i := range s.Tokens {
		t := &s.Tokens[i]
		want := sha256.Sum256([]byte(t.Secret))
		if subtle.ConstantTimeCompare(want[:], got[:]) == 1 {
			found = t
		}
	}
	return found
}

// decode reads the JSON body into v within the size limit: unknown fields,
// a malformed document, data after it, a body too large are errors naming
// the problem (and the field where JSON tells it). With v nil the body
// must be empty or {}. required says the body must be there.
func (s *Server) decode(r *http.Request, v any, required bool) error {
	limit := s.maxRequestBytes()
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, int64(limit)))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, "request too large: the limit is %d bytes", limit)
	case err != nil:
		return Errorf(http.StatusBadRequest, "bad request: cannot read the body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if required {
			return Errorf(http.StatusBadRequest, "bad request: a JSON body is required")
		}
		return nil
	}
	if v == nil {
		v = &struct{}{}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "bad request: data after the JSON object")
	}
	return nil
}

// jsonError explains a decoding error, naming the field when it can.
func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return &Error{Status: http.StatusBadRequest, Field: te.Field,
			Message: fmt.Sprintf("%s: want %s, got a JSON %s", te.Field, jsonType(te.Type.String()), te.Value)}
	case errors.As(err, &te):
		return Errorf(http.StatusBadRequest, "bad request: want a JSON object, got a JSON %s", te.Value)
	case errors.As(err, &se):
		return Errorf(http.StatusBadRequest, "bad request: malformed JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(http.StatusBadRequest, "bad request: malformed JSON: unexpected end of the body")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f, _ := strconv.Unquote(name)
		return &Error{Status: http.StatusBadRequest, Field: f, Message: fmt.Sprintf("%s: unknown field", f)}
	}
	return Errorf(http.StatusBadRequest, "bad request: %v", err)
}

func jsonType(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.Contains(t, "int"):
		return "an integer"
	case t == "string":
		return "a string"
	}
	return t
}

// limiter is a token bucket: rate calls per second, a burst of rate.
type limiter struct {
	rate   int
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(rate int) *limiter {
	return &limiter{rate: rate, tokens: float64(rate), last: time.Now()}
}

// allow takes a token if there is one.
func (l *limiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(float64(l.rate), l.tokens+now.Sub(l.last).Seconds()*float64(l.rate))
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
