package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/testutil"
)

// unixHTTP is an HTTP client of the socket at path, as curl --unix-socket
// is: no checks of its own.
func unixHTTP(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// send does one request and returns the status and the decoded error body.
func send(t *testing.T, c *http.Client, method, url, body string, header ...string) (int, ErrorBody, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb ErrorBody
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error == "" {
			t.Errorf("%s %s: %d with a body that is not an error object: %q", method, url, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, eb, string(raw)
}

// TestBadInput: every bad request gets its 4xx and a JSON body naming the
// field and the problem, and the Handler is never called.
func TestBadInput(t *testing.T) {
	ts := startServer(t, "", func(s *Server) { s.MaxRequestBytes = 1024; s.WriteRate = 1000 })
	c := unixHTTP(ts.path)
	const url = "http://virtbgp/v1/manual-routes"
	for _, tc := range []struct {
		name, method, url, body string
		status                  int
		field, msg              string
	}{
		{"malformed JSON", "POST", url, `{"prefix":`, 400, "", "malformed JSON"},
		{"not JSON", "POST", url, `announce route 198.51.100.1/32`, 400, "", "malformed JSON at byte 1"},
		{"unknown field", "POST", url, `{"prefix":"198.51.100.1/32","colour":"red"}`, 400, "colour", "colour: unknown field"},
		{"wrong type", "POST", url, `{"prefix":"198.51.100.1/32","med":"ten"}`, 400, "med", "med: want an integer, got a JSON string"},
		{"negative MED", "POST", url, `{"prefix":"198.51.100.1/32","med":-1}`, 400, "med", "med: want an integer"},
		{"array body", "POST", url, `["198.51.100.1/32"]`, 400, "", "want a JSON object, got a JSON array"},
		{"two objects", "POST", url, `{"prefix":"198.51.100.1/32"}{}`, 400, "", "data after the JSON object"},
		{"no body", "POST", url, ``, 400, "", "a JSON body is required"},
		{"oversized", "POST", url, `{"prefix":"198.51.100.1/32","note":"` + strings.Repeat("x", 2000) + `"}`, 413, "", "request too large: the limit is 1024 bytes"},
		{"unknown endpoint", "GET", "http://virtbgp/v1/frobnicate", ``, 404, "", "no such endpoint: GET /v1/frobnicate"},
		{"old protocol's verb", "POST", "http://virtbgp/", `{"op":"drain"}`, 404, "", "no such endpoint"},
		{"wrong method", "GET", "http://virtbgp/v1/drain", ``, 405, "", "method GET not allowed on /v1/drain"},
		{"drain with a field", "POST", "http://virtbgp/v1/drain", `{"force":true}`, 400, "force", "force: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, eb, raw := send(t, c, tc.method, tc.url, tc.body)
			if status != tc.status || eb.Field != tc.field || !strings.Contains(eb.Error, tc.msg) {
				t.Errorf("answer %d %q, want %d with field %q and an error containing %q", status, raw, tc.status, tc.field, tc.msg)
			}
		})
	}
	if n := ts.h.total(); n != 0 {
		t.Errorf("handler called %d times for bad requests", n)
	}
	// A request the Handler refuses: the field and the problem come back.
	status, eb, raw := send(t, c, "POST", url, `{"prefix":"198.51.100.1/32","communities":["65001:1","65536:1"]}`)
	if status != 400 || eb.Field != "communities[1]" || !strings.Contains(eb.Error, `invalid community "65536:1"`) {
		t.Errorf("bad community: %d %s", status, raw)
	}
	status, eb, raw = send(t, c, "POST", url, `{"prefix":"203.0.113.1/32"}`)
	if status != 400 || eb.Field != "prefix" || !strings.Contains(eb.Error, "outside the prefixes allowed to a manual route") {
		t.Errorf("prefix outside the pools: %d %s", status, raw)
	}
	status, _, raw = send(t, c, "DELETE", url+"/198.51.100.9/32", ``)
	if status != 404 || !strings.Contains(raw, "no manual route for 198.51.100.9/32") {
		t.Errorf("withdraw of a missing route: %d %s", status, raw)
	}
}

// TestManualRoutesRoundTrip: the Client's announce, list and withdraw.
func TestManualRoutesRoundTrip(t *testing.T) {
	ts := startServer(t, "", nil)
	c := ts.client()
	ctx := context.Background()
	med := uint32(7)
	r, err := c.Announce(ctx, manualReq("198.51.100.1", &med))
	if err != nil || r.Prefix.String() != "198.51.100.1/32" || *r.MED != 7 || r.CreatedBy != "uid 0" || r.TTL != "30s" {
		t.Fatalf("Announce = %+v, %v", r, err)
	}
	rs, err := c.ManualRoutes(ctx)
	if err != nil || len(rs) != 1 {
		t.Fatalf("ManualRoutes = %+v, %v", rs, err)
	}
	if _, err := c.Withdraw(ctx, "198.51.100.1/32"); err != nil {
		t.Fatalf("Withdraw: %v", err)
	}
	_, err = c.Withdraw(ctx, "198.51.100.2/32")
	if e, ok := err.(*Error); !ok || e.Status != 404 {
		t.Errorf("Withdraw of a missing route = %#v, want a 404", err)
	}
	if !strings.Contains(ts.logs.String(), `op=announce by="uid 0" result=198.51.100.1/32`) {
		t.Errorf("log lacks the announce:\n%s", ts.logs)
	}
}

// TestTCPAuth: the TCP listener serves only tokens: none or a wrong one is
// 401, a read-only one writing is 403, a read-write one works; a secret
// never reaches the log.
func TestTCPAuth(t *testing.T) {
	const ro, rw = "read-only-secret-0123456789", "read-write-secret-0123456789"
	ts := startServer(t, "", func(s *Server) {
		s.Tokens = []Token{{Name: "monitor", Secret: ro}, {Name: "automation", Secret: rw, Write: true}}
	})
	log, logs := testutil.Logger()
	srv := &Server{Handler: ts.h, Log: log, Tokens: ts.Tokens}
	if err := srv.Listen(filepath.Join(t.TempDir(), "c.sock")); err != nil {
		t.Fatal(err)
	}
	if err := srv.ListenTCP("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	base := "http://" + srv.TCPAddr().String()
	c := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct {
		name, method, path, auth string
		status                   int
		msg                      string
	}{
		{"no token", "GET", "/v1/status", "", 401, "authentication required"},
		{"not bearer", "GET", "/v1/status", "Basic " + rw, 401, `must be "Bearer TOKEN"`},
		{"wrong token", "GET", "/v1/status", "Bearer wrong-token-0123456789", 401, "unknown token"},
		{"wrong token writing", "POST", "/v1/drain", "Bearer wrong-token-0123456789", 401, "unknown token"},
		{"read-only reads", "GET", "/v1/status", "Bearer " + ro, 200, ""},
		{"read-only writes", "POST", "/v1/drain", "Bearer " + ro, 403, "permission denied: token monitor is read-only"},
		{"read-only announces", "POST", "/v1/manual-routes", "Bearer " + ro, 403, "read-only"},
		{"read-write writes", "POST", "/v1/drain", "Bearer " + rw, 200, ""},
		{"no token, unknown path", "GET", "/v1/nothing", "", 401, "authentication required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.auth != "" {
				h = []string{"Authorization", tc.auth}
			}
			body := ""
			if tc.path == "/v1/manual-routes" {
				body = `{"prefix":"198.51.100.1/32"}`
			}
			status, eb, raw := send(t, c, tc.method, base+tc.path, body, h...)
			if status != tc.status || !strings.Contains(eb.Error, tc.msg) {
				t.Errorf("answer %d %q, want %d with %q", status, raw, tc.status, tc.msg)
			}
		})
	}
	if n := ts.h.count(OpDrain); n != 1 {
		t.Errorf("drain called %d times, want 1 (the read-write token's)", n)
	}
	l := logs.String()
	if strings.Contains(l, ro) || strings.Contains(l, rw) || strings.Contains(l, "wrong-token") {
		t.Errorf("a secret reached the log:\n%s", l)
	}
	if !strings.Contains(l, `token=automation msg="request served" op=drain by="token automation"`) &&
		!strings.Contains(l, `msg="request served" remote=`) {
		t.Errorf("log lacks the token's drain:\n%s", l)
	}
}

func manualReq(addr string, med *uint32) manual.Request {
	return manual.Request{Prefix: addr, MED: med, TTL: "30s", Note: "test"}
}

// TestWriteRateLimit: on a fake clock, a burst of the rate, then one call
// per 1/rate seconds.
func TestWriteRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(5)
		n := 0
		for l.allow() {
			n++
		}
		if n != 5 {
			t.Fatalf("burst %d, want 5", n)
		}
		time.Sleep(199 * time.Millisecond)
		if l.allow() {
			t.Error("allowed before 1/rate passed")
		}
		time.Sleep(time.Millisecond)
		if !l.allow() {
			t.Error("refused after 1/rate passed")
		}
		time.Sleep(time.Hour)
		n = 0
		for l.allow() {
			n++
		}
		if n != 5 {
			t.Errorf("burst after an hour %d, want 5 (no more than the rate)", n)
		}
	})
}

// TestClientVerifiesServer: a socket served by a process that is neither
// root nor the client's uid gets nothing from the client (finding 8b of
// issue 17): the server here runs as uid 65534, for real.
func TestClientVerifiesServer(t *testing.T) {
	if os.Geteuid() != 0 {
		// Root is needed to run the server as another uid; CI runs as
		// root, where this runs. As a user, the check of the client's own
		// function against itself.
		t.Fatalf("this test runs as root (CI does); uid %d", os.Geteuid())
	}
	dir := nobodyDir(t)
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "run"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "foreign.sock")
	cmd := exec.Command(filepath.Join(dir, "control.test"))
	cmd.Dir = dir
	cmd.Env = []string{helperEnv + "=" + sock, helperOpEnv + "=serve"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line := make([]byte, 64)
	if n, _ := out.Read(line); !strings.Contains(string(line[:n]), "listening") {
		t.Fatalf("foreign server: %q", line[:n])
	}
	_, err = (&Client{Path: sock, Timeout: 5 * time.Second}).Drain(context.Background())
	want := "socket " + sock + ": refusing to talk to it: the process serving it (pid " + strconv.Itoa(cmd.Process.Pid) + ") runs as uid 65534, not root"
	if err == nil || err.Error() != want {
		t.Errorf("Drain = %v, want %q", err, want)
	}
}

// FuzzDecode: the server's body decoder answers any body with nil or an
// *Error of status 400 or 413, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"prefix":"198.51.100.1","med":42,"communities":["65001:7"]}`))
	f.Add([]byte(`{"prefix":`))
	f.Add([]byte(`{"colour":"red"}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"med":"x"}`))
	s := &Server{MaxRequestBytes: 512}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := http.NewRequest("POST", "http://virtbgp/v1/manual-routes", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		var req manual.Request
		err = s.decode(r, &req, true)
		if err == nil {
			return
		}
		e, ok := err.(*Error)
		if !ok || (e.Status != 400 && e.Status != 413) || e.Message == "" {
			t.Fatalf("decode(%q) = %#v", body, err)
		}
	})
}

// TestReadGroup: with a read group, the socket is mode 0660 of that group,
// and a member (a real process as uid and gid 65534) may read but not
// write; a directory Listen creates is 0750 of the group.
func TestReadGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("this test runs as root (CI does); uid %d", os.Geteuid())
	}
	dir := nobodyDir(t)
	group := uint32(65534)
	ts := startServer(t, filepath.Join(dir, "run", "control.sock"), func(s *Server) { s.ReadGroup = &group })
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{ts.path, 0o660}, {filepath.Dir(ts.path), 0o750}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != f.mode || st.Gid != group {
			t.Errorf("%s: mode %v gid %d, want %v and %d", f.path, fi.Mode().Perm(), st.Gid, f.mode, group)
		}
	}
	out := runAsNobody(t, dir, ts.path, OpStatus)
	if !strings.Contains(out, `msg="host hv1"`) || !strings.Contains(out, "err=<nil>") {
		t.Errorf("status as a member of the read group:\n%s", out)
	}
	out = runAsNobody(t, dir, ts.path, OpDrain)
	if !strings.Contains(out, "err=permission denied: uid 65534 is read-only") {
		t.Errorf("drain as a member of the read group:\n%s", out)
	}
	if ts.h.count(OpStatus) != 1 || ts.h.count(OpDrain) != 0 {
		t.Errorf("calls %v, want one status", ts.h.calls)
	}
}

// TestMaintenanceBadInput: a bad maintenance request gets its 4xx and a
// JSON body naming the field, and never reaches the Handler; the
// Handler's own refusals (an unknown domain, a bad ttl) come back with
// their field.
func TestMaintenanceBadInput(t *testing.T) {
	ts := startServer(t, "", func(s *Server) { s.WriteRate = 1000 })
	c := unixHTTP(ts.path)
	const url = "http://virtbgp/v1/maintenance/web-1"
	for _, tc := range []struct {
		name, method, url, body string
		status                  int
		field, msg              string
	}{
		{"malformed JSON", "PUT", url, `{"ip":`, 400, "", "malformed JSON"},
		{"unknown field", "PUT", url, `{"ip":"192.0.2.1","reason":"x"}`, 400, "reason", "reason: unknown field"},
		{"wrong type", "PUT", url, `{"ttl":30}`, 400, "ttl", "ttl: want a string, got a JSON number"},
		{"array body", "PUT", url, `["web-1"]`, 400, "", "want a JSON object"},
		{"unknown query parameter", "DELETE", url + "?prefix=192.0.2.1", ``, 400, "prefix", "prefix: unknown query parameter"},
		{"a body on DELETE", "DELETE", url, `{"ip":"192.0.2.1"}`, 400, "ip", "ip: unknown field"},
		{"wrong method", "POST", url, `{}`, 405, "", "method POST not allowed on /v1/maintenance/web-1"},
		{"no domain", "PUT", "http://virtbgp/v1/maintenance/", `{}`, 404, "", "no such endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, eb, raw := send(t, c, tc.method, tc.url, tc.body)
			if status != tc.status || eb.Field != tc.field || !strings.Contains(eb.Error, tc.msg) {
				t.Errorf("answer %d %q, want %d with field %q and an error containing %q", status, raw, tc.status, tc.field, tc.msg)
			}
		})
	}
	if n := ts.h.total(); n != 0 {
		t.Errorf("handler called %d times for bad requests", n)
	}
	for _, tc := range []struct {
		name, method, url, body string
		status                  int
		field                   string
	}{
		{"a bad ttl", "PUT", url, `{"ttl":"soon"}`, 400, "ttl"},
		{"a bad ip", "PUT", url, `{"ip":"web"}`, 400, "ip"},
		{"an unknown domain", "PUT", "http://virtbgp/v1/maintenance/nope", ``, 404, "domain"},
		{"off of an unknown domain", "DELETE", "http://virtbgp/v1/maintenance/nope", ``, 404, "domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, eb, raw := send(t, c, tc.method, tc.url, tc.body)
			if status != tc.status || eb.Field != tc.field {
				t.Errorf("answer %d %q, want %d with field %q", status, raw, tc.status, tc.field)
			}
		})
	}
}

// TestMaintenanceRoundTrip: the Client's on (with a name that needs
// escaping), list and off.
func TestMaintenanceRoundTrip(t *testing.T) {
	ts := startServer(t, "", nil)
	c := ts.client()
	ctx := context.Background()
	e, err := c.MaintenanceOn(ctx, "web-1", maintenance.Request{IP: "192.0.2.1", Note: "kernel", TTL: "10m"})
	if err != nil || e.Prefix.String() != "192.0.2.1/32" || e.SetBy != "uid 0" || e.TTL != "10m0s" || e.Note != "kernel" {
		t.Fatalf("MaintenanceOn = %+v, %v", e, err)
	}
	var de *DaemonError
	if _, err := c.MaintenanceOn(ctx, "web 1/x", maintenance.Request{}); !errors.As(err, &de) || de.Status != 404 || !strings.Contains(de.Message, "no domain web 1/x") {
		t.Errorf("MaintenanceOn of an escaped name = %v, want the 404 naming it", err)
	}
	es, err := c.Maintenance(ctx)
	if err != nil || len(es) != 1 || es[0].Domain != "web-1" {
		t.Errorf("Maintenance = %+v, %v", es, err)
	}
	es, err = c.MaintenanceOff(ctx, "web-1", "192.0.2.1")
	if err != nil || len(es) != 1 || es[0].SetBy != "uid 0" {
		t.Errorf("MaintenanceOff = %+v, %v", es, err)
	}
	for _, op := range []string{OpMaintenanceOn, OpMaintenance, OpMaintenanceOff} {
		if n := ts.h.count(op); n < 1 {
			t.Errorf("%s: handler not called", op)
		}
	}
}
