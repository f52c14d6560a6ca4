package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// helperEnv, when set to a socket path, makes the test binary a client that
// sends one request there, the op in helperOpEnv, and prints the outcome
// (runAsNobody runs it as another uid).
const (
	helperEnv   = "VIRTBGP_CONTROL_TEST_CLIENT"
	helperOpEnv = "VIRTBGP_CONTROL_TEST_OP"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		if os.Getenv(helperOpEnv) == "serve" {
			// A server of someone else: accept and answer nothing.
			ln, err := net.Listen("unix", path)
			if err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			fmt.Println("listening")
			for {
				c, err := ln.Accept()
				if err != nil {
					os.Exit(0)
				}
				go func() { io.Copy(io.Discard, c); c.Close() }()
			}
		}
		c := Client{Path: path, Timeout: 10 * time.Second}
		var m Message
		var err error
		if op := os.Getenv(helperOpEnv); op == OpStatus {
			var r status.Report
			r, err = c.Status(context.Background())
			m.Message = "host " + r.Host
		} else {
			err = c.Do(context.Background(), "POST", "/v1/"+op, nil, &m)
		}
		msg := m.Message
		var de *DaemonError
		fmt.Printf("uid=%d msg=%q daemon-error=%t err=%v\n", os.Getuid(), msg, errors.As(err, &de), err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeHandler counts calls and answers with canned results.
type fakeHandler struct {
	mu     sync.Mutex
	calls  map[string]int
	report status.Report
	err    error         // returned by every method when set
	block  bool          // wait for ctx to end, then return its error
	panics bool          // panic in every method
	ctxErr chan error    // receives ctx.Err() after a block
	hold   chan struct{} // when set, each call waits on it
}

func (f *fakeHandler) enter(ctx context.Context, op string) error {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	f.mu.Unlock()
	if f.panics {
		panic("boom")
	}
	if f.hold != nil {
		<-f.hold
	}
	if f.block {
		<-ctx.Done()
		if f.ctxErr != nil {
			f.ctxErr <- ctx.Err()
		}
		return ctx.Err()
	}
	return f.err
}

func (f *fakeHandler) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeHandler) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (f *fakeHandler) Status(ctx context.Context) (status.Report, error) {
	if err := f.enter(ctx, OpStatus); err != nil {
		return status.Report{}, err
	}
	return f.report, nil
}

func (f *fakeHandler) Drain(ctx context.Context) (string, error) {
	if err := f.enter(ctx, OpDrain); err != nil {
		return "", err
	}
	return "draining: routes carry GRACEFUL_SHUTDOWN, withdrawing in 60s", nil
}

func (f *fakeHandler) Undrain(ctx context.Context) (string, error) {
	if err := f.enter(ctx, OpUndrain); err != nil {
		return "", err
	}
	return "undrained: routes announced again", nil
}

func (f *fakeHandler) Reload(ctx context.Context) (string, error) {
	if err := f.enter(ctx, OpReload); err != nil {
		return "", err
	}
	return "reloaded: mapping generation 2", nil
}

func (f *fakeHandler) ReloadForce(ctx context.Context) (string, error) {
	if err := f.enter(ctx, opReloadForce); err != nil {
		return "", err
	}
	return "reloaded, confirmed: mapping generation 3", nil
}

// opReloadForce names ReloadForce in the fake's counts.
const opReloadForce = "reload-force"

func (f *fakeHandler) ManualRoutes(ctx context.Context) ([]manual.Route, error) {
	if err := f.enter(ctx, OpManual); err != nil {
		return nil, err
	}
	return []manual.Route{{Prefix: netip.MustParsePrefix("198.51.100.1/32"), NextHop: "self", CreatedBy: "uid 0"}}, nil
}

func (f *fakeHandler) Announce(ctx context.Context, who string, req manual.Request) (manual.Route, error) {
	if err := f.enter(ctx, OpAnnounce); err != nil {
		return manual.Route{}, err
	}
	all := mapping.Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	r, ttl, err := manual.Validate(&req, &all)
	if err != nil {
		return manual.Route{}, err
	}
	return manual.New(r, ttl, req.Note, who, time.Now(), nil), nil
}

func (f *fakeHandler) Withdraw(ctx context.Context, who string, prefix string) (manual.Route, error) {
	if err := f.enter(ctx, OpWithdraw); err != nil {
		return manual.Route{}, err
	}
	if prefix != "198.51.100.1/32" {
		return manual.Route{}, Errorf(404, "no manual route for %s", prefix)
	}
	return manual.Route{Prefix: netip.MustParsePrefix(prefix), CreatedBy: who}, nil
}

func (f *fakeHandler) Maintenance(ctx context.Context) ([]maintenance.Entry, error) {
	if err := f.enter(ctx, OpMaintenance); err != nil {
		return nil, err
	}
	return []maintenance.Entry{{Domain: "web-1", UUID: "u1", SetBy: "uid 0"}}, nil
}

func (f *fakeHandler) MaintenanceOn(ctx context.Context, who, domain string, req maintenance.Request) (maintenance.Entry, error) {
	if err := f.enter(ctx, OpMaintenanceOn); err != nil {
		return maintenance.Entry{}, err
	}
	if domain != "web-1" {
		return maintenance.Entry{}, &Error{Status: 404, Field: "domain", Message: "no domain " + domain}
	}
	p, ttl, err := maintenance.ParseRequest(&req)
	if err != nil {
		return maintenance.Entry{}, err
	}
	return maintenance.New(domain, "u1", p, ttl, req.Note, who, time.Now(), nil), nil
}

func (f *fakeHandler) MaintenanceOff(ctx context.Context, who, domain, ip string) ([]maintenance.Entry, error) {
	if err := f.enter(ctx, OpMaintenanceOff); err != nil {
		return nil, err
	}
	if domain != "web-1" {
		return nil, &Error{Status: 404, Field: "domain", Message: "no maintenance for " + domain}
	}
	return []maintenance.Entry{{Domain: domain, UUID: "u1", SetBy: who}}, nil
}

func testReport() status.Report {
	med := uint32(10)
	t0 := time.Date(2026, 5, 9, 7, 0, 0, 0, time.UTC)
	return status.Report{
		Version: "virtbgp test", Host: "hv1", Started: t0, Ready: true,
		Libvirt: status.Libvirt{URI: "test:///default", Connected: true},
		Peers: []status.Peer{{Address: "198.18.0.1", ASN: 65000, State: "established", Since: t0,
			RoutesSent: 1, Families: []string{"ipv4", "ipv6"}}},
		Domains: []status.Domain{{Name: "test", UUID: "6695eb01-f6a4-8304-79aa-97f2502e193f",
			State: "running", Reason: "booted", VM: "test", Routes: 1}},
		Routes: []status.Route{{Prefix: "192.0.2.10/32", NextHop: "self", Communities: []string{"65001:100"},
			MED: &med, Domain: "test", VM: "test", Why: "running"}},
		Mapping: status.Mapping{Path: "/etc/virtbgp/mapping.yaml", Generation: 1, LoadedAt: t0,
			Files: []string{"/etc/virtbgp/mapping.yaml"}, VMs: 1, Routes: 1,
			LastReload: status.Reload{At: t0, OK: true}},
		Drain: status.Drain{State: reconcile.DrainNone},
		Time:  t0.Add(time.Minute),
	}
}

// testServer is a running server on a socket in a fresh directory.
type testServer struct {
	*Server
	h    *fakeHandler
	logs *testutil.SyncBuffer
	path string
	done chan error // Serve's result
	stop context.CancelFunc
}

func startServer(t *testing.T, path string, configure func(*Server)) *testServer {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "control.sock")
	}
	log, logs := testutil.Logger()
	ts := &testServer{h: &fakeHandler{report: testReport()}, logs: logs, path: path, done: make(chan error, 1)}
	ts.Server = &Server{Handler: ts.h, Log: log}
	if configure != nil {
		configure(ts.Server)
	}
	if err := ts.Listen(path); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.stop = cancel
	go func() { ts.done <- ts.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs)
		}
	})
	return ts
}

func (ts *testServer) client() *Client { return &Client{Path: ts.path, Timeout: 10 * time.Second} }

func TestDefaultSocketMatchesConfig(t *testing.T) {
	if DefaultSocket != config.DefaultControlSocket {
		t.Errorf("control.DefaultSocket %q != config.DefaultControlSocket %q", DefaultSocket, config.DefaultControlSocket)
	}
}

func TestRoundTrip(t *testing.T) {
	ts := startServer(t, "", nil)
	c := ts.client()
	ctx := context.Background()

	got, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	want := testReport()
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Errorf("Status:\n got %s\nwant %s", gj, wj)
	}
	if *got.Routes[0].MED != 10 || !got.Started.Equal(want.Started) {
		t.Errorf("Status lost fields: %+v", got)
	}

	for _, tc := range []struct {
		op   string
		call func(context.Context) (string, error)
		want string
	}{
		{OpDrain, c.Drain, "draining: routes carry GRACEFUL_SHUTDOWN, withdrawing in 60s"},
		{OpUndrain, c.Undrain, "undrained: routes announced again"},
		{OpReload, c.Reload, "reloaded: mapping generation 2"},
		{opReloadForce, c.ReloadForce, "reloaded, confirmed: mapping generation 3"},
	} {
		msg, err := tc.call(ctx)
		if err != nil || msg != tc.want {
			t.Errorf("%s = %q, %v; want %q", tc.op, msg, err, tc.want)
		}
		if n := ts.h.count(tc.op); n != 1 {
			t.Errorf("%s: handler called %d times, want 1", tc.op, n)
		}
	}
	if n := ts.h.count(OpStatus); n != 1 {
		t.Errorf("status: handler called %d times, want 1", n)
	}
	// Write operations are logged with who asked.
	logs := ts.logs.String()
	for _, s := range []string{`msg="request served" uid=0 gid=0 pid=` + strconv.Itoa(os.Getpid()) + ` op=drain by="uid 0"`,
		`msg="request served" uid=0 gid=0 pid=` + strconv.Itoa(os.Getpid()) + ` op=undrain by="uid 0"`,
		`msg="request served" uid=0 gid=0 pid=` + strconv.Itoa(os.Getpid()) + ` op=reload by="uid 0"`} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
}

func TestHandlerError(t *testing.T) {
	ts := startServer(t, "", nil)
	ts.h.err = errors.New("mapping.yaml:3: unknown key \"colour\"; the previous mapping stays in force")
	_, err := ts.client().Reload(context.Background())
	var de *DaemonError
	if !errors.As(err, &de) || de.Status != http.StatusInternalServerError || de.Message != ts.h.err.Error() {
		t.Fatalf("Reload error = %#v, want DaemonError with the handler's message", err)
	}
	if _, err := ts.client().Status(context.Background()); !errors.As(err, &de) {
		t.Errorf("Status error = %v, want DaemonError", err)
	}
	if !strings.Contains(ts.logs.String(), `msg="request failed"`) || !strings.Contains(ts.logs.String(), "op=reload") {
		t.Errorf("log lacks the failure:\n%s", ts.logs)
	}
}

func TestSocketModeAndDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "virtbgp")
	ts := startServer(t, filepath.Join(dir, "control.sock"), nil)
	fi, err := os.Lstat(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", di.Mode().Perm())
	}
	if ts.Path() != ts.path {
		t.Errorf("Path() = %q, want %q", ts.Path(), ts.path)
	}
}

func TestExistingDirectoryKept(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	startServer(t, filepath.Join(dir, "control.sock"), nil)
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o755 {
		t.Errorf("existing directory mode changed to %v", di.Mode().Perm())
	}
}

// nobodyDir is a directory that uid 65534 can enter, holding a copy of the
// test binary it can run (the test binary is usually in a directory only
// root can enter).
func nobodyDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "virtbgp-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(self, filepath.Join(dir, "control.test"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runAsNobody runs the test binary of dir (nobodyDir) as uid and gid 65534,
// a client sending op to the socket, and returns what it printed.
func runAsNobody(t *testing.T, dir, socket, op string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(dir, "control.test"))
	cmd.Dir = dir
	cmd.Env = []string{helperEnv + "=" + socket, helperOpEnv + "=" + op}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid 65534: %v\n%s", err, out)
	}
	return string(out)
}

// TestClientPermissionDenied: a non-root client is refused by the socket
// file's permissions, and says why; nothing reaches the daemon. As root the
// client runs as uid 65534 against the socket's own mode 0600; otherwise it
// is this process, against a socket made mode 0000.
func TestClientPermissionDenied(t *testing.T) {
	var out string
	if os.Geteuid() == 0 {
		dir := nobodyDir(t)
		ts := startServer(t, filepath.Join(dir, "control.sock"), nil)
		out = runAsNobody(t, dir, ts.path, OpStatus)
		if want := "daemon-error=false err=permission denied: the control socket is for root; run this as root (socket " +
			ts.path + ": permission denied)"; !strings.Contains(out, want) {
			t.Errorf("client output lacks %q:\n%s", want, out)
		}
		if n := ts.h.total(); n != 0 {
			t.Errorf("handler called %d times for a client the file permissions refuse", n)
		}
		return
	}
	ts := startServer(t, "", nil)
	if err := os.Chmod(ts.path, 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := ts.client().Status(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "permission denied: the control socket is for root") {
		t.Errorf("Status = %v", err)
	}
	if n := ts.h.total(); n != 0 {
		t.Errorf("handler called %d times for a client the file permissions refuse", n)
	}
}

// TestNonRootRefused connects for real from a process running as uid 65534
// to a socket opened up for this test only, so that it is the SO_PEERCRED
// check that refuses the client, not file permissions.
func TestNonRootRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	dir := nobodyDir(t)
	ts := startServer(t, filepath.Join(dir, "control.sock"), nil)
	if err := os.Chmod(ts.path, 0o666); err != nil {
		t.Fatal(err)
	}
	out := runAsNobody(t, dir, ts.path, OpDrain)
	for _, want := range []string{
		"uid=65534",
		"daemon-error=true", // the server answered: the connect itself went through
		"err=permission denied: the control socket is for root (you are uid 65534)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("client output lacks %q:\n%s", want, out)
		}
	}
	if n := ts.h.total(); n != 0 {
		t.Errorf("handler called %d times for a non-root client", n)
	}
	logs := ts.logs.String()
	for _, want := range []string{`msg="client refused"`, `reason="permission denied: the control socket is for root (you are uid 65534)"`, "uid=65534", "gid=65534", "op=drain"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	// Root is still served.
	if _, err := ts.client().Drain(context.Background()); err != nil {
		t.Errorf("root client after the refusal: %v", err)
	}
}

func copyFile(from, to string, mode fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// staleSocket leaves a socket file at path that nobody listens on, as a
// killed daemon does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("stale socket not left: %v %v", fi, err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	staleSocket(t, path)
	if fi, _ := os.Lstat(path); fi.Mode().Perm() == 0o600 {
		t.Fatalf("stale socket already has mode %v", fi.Mode())
	}
	ts := startServer(t, path, nil)
	// (The inode may be reused, so the mode tells the new file.)
	if fi, _ := os.Lstat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file not replaced: mode %v", fi.Mode())
	}
	if _, err := ts.client().Status(context.Background()); err != nil {
		t.Fatalf("Status on the replacement: %v", err)
	}
	if !strings.Contains(ts.logs.String(), "removed a stale control socket") {
		t.Errorf("log lacks the removal:\n%s", ts.logs)
	}
}

func TestSecondServerRefused(t *testing.T) {
	first := startServer(t, "", nil)
	before, _ := os.Lstat(first.path)
	second := &Server{Handler: &fakeHandler{}}
	err := second.Listen(first.path)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen = %v, want ErrInUse", err)
	}
	if want := "control socket " + first.path + ": another virtbgp is already listening there"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if err := second.Serve(context.Background()); err == nil {
		t.Error("Serve after a failed Listen succeeded")
	}
	second.Close()
	// The first one's socket is untouched and still served.
	if after, err := os.Lstat(first.path); err != nil || !os.SameFile(before, after) {
		t.Fatalf("first server's socket changed: %v", err)
	}
	if _, err := first.client().Status(context.Background()); err != nil {
		t.Errorf("first server after the second's attempt: %v", err)
	}
	// The first one logs the probe at debug level only.
	if strings.Contains(first.logs.String(), "level=WARN") {
		t.Errorf("the probe caused a warning:\n%s", first.logs)
	}
}

func TestNotASocketRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := (&Server{Handler: &fakeHandler{}}).Listen(path)
	if err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Fatalf("Listen = %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Errorf("file changed: %q", b)
	}
}

func TestListenErrors(t *testing.T) {
	if err := (&Server{}).Listen(filepath.Join(t.TempDir(), "s")); err == nil {
		t.Error("Listen without a Handler succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if err := (&Server{Handler: &fakeHandler{}}).Listen(filepath.Join(file, "control.sock")); err == nil ||
		!strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Listen under a file = %v", err)
	}
	if err := (&Server{Handler: &fakeHandler{}}).Serve(context.Background()); err == nil {
		t.Error("Serve without Listen succeeded")
	}
}

func TestHandlerPanic(t *testing.T) {
	ts := startServer(t, "", nil)
	ts.h.panics = true
	_, err := ts.client().Reload(context.Background())
	if err == nil || err.Error() != "internal error in reload: boom" {
		t.Errorf("Reload = %v, want the internal error", err)
	}
	if !strings.Contains(ts.logs.String(), `msg="handler panicked"`) {
		t.Errorf("log lacks the panic:\n%s", ts.logs)
	}
	ts.h.panics = false // (no call in flight)
	if _, err := ts.client().Status(context.Background()); err != nil {
		t.Errorf("Status after a panic: %v", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	ts := startServer(t, "", func(s *Server) { s.MaxConns = 4; s.WriteRate = 1000 })
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%2 == 0 {
				_, err = ts.client().Status(context.Background())
			} else {
				_, err = ts.client().Drain(context.Background())
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if ts.h.count(OpStatus) != 20 || ts.h.count(OpDrain) != 20 {
		t.Errorf("calls %v", ts.h.calls)
	}
}

func TestServeReturnsOnCancel(t *testing.T) {
	ts := startServer(t, "", nil)
	// A request in flight when the server stops: its handler's context is
	// cancelled and Serve waits for it.
	ts.h.block = true
	ts.h.ctxErr = make(chan error, 1)
	answered := make(chan error, 1)
	go func() {
		_, err := ts.client().Drain(context.Background())
		answered <- err
	}()
	testutil.WaitFor(t, 5*time.Second, "the drain handler", func() bool { return ts.h.count(OpDrain) == 1 })

	ts.stop()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	ts.done <- nil // for the cleanup
	if _, err := os.Lstat(ts.path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there after Serve returned: %v", err)
	}
	if got := <-ts.h.ctxErr; !errors.Is(got, context.Canceled) {
		t.Errorf("in-flight handler ctx ended with %v, want Canceled", got)
	}
	var de *DaemonError
	if err := <-answered; !errors.As(err, &de) {
		t.Errorf("in-flight client got %v, want the daemon's error answer", err)
	}
	if _, err := ts.client().Status(context.Background()); err == nil || !strings.Contains(err.Error(), "is virtbgp running?") {
		t.Errorf("Status after shutdown = %v", err)
	}
}

func TestCloseLeavesForeignSocket(t *testing.T) {
	ts := startServer(t, "", nil)
	// Someone removed our socket and put another there: Close must not
	// remove theirs.
	if err := os.Remove(ts.path); err != nil {
		t.Fatal(err)
	}
	staleSocket(t, ts.path)
	foreign, _ := os.Lstat(ts.path)
	if err := ts.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if fi, err := os.Lstat(ts.path); err != nil || !os.SameFile(fi, foreign) {
		t.Errorf("foreign socket removed or replaced: %v", err)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Serve after Close = %v", err)
		}
		ts.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

func TestServeFunc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, path, &fakeHandler{report: testReport()}, nil) }()
	c := &Client{Path: path}
	testutil.WaitFor(t, 5*time.Second, "the server", func() bool { _, err := c.Status(context.Background()); return err == nil })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	_, err := (&Client{Path: missing}).Status(context.Background())
	if want := "is virtbgp running? socket " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing socket: %v, want %q", err, want)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("missing socket error does not wrap ENOENT: %v", err)
	}

	stale := filepath.Join(dir, "stale.sock")
	staleSocket(t, stale)
	_, err = (&Client{Path: stale}).Drain(context.Background())
	if want := "is virtbgp running? socket " + stale + ": connection refused"; err == nil || err.Error() != want {
		t.Errorf("stale socket: %v, want %q", err, want)
	}

	// A server that accepts and never answers.
	silent := filepath.Join(dir, "silent.sock")
	ln, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			accepted <- struct{}{}
		}
	}()
	_, err = (&Client{Path: silent, Timeout: 100 * time.Millisecond}).Status(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "virtbgp did not answer in time (socket "+silent+")") {
		t.Errorf("silent server: %v", err)
	}
	<-accepted
	// A call cancelled while it waits for the answer.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-accepted
		cancel()
	}()
	_, err = (&Client{Path: silent}).Status(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v, want Canceled", err)
	}

	// A server that closes without answering.
	closing := filepath.Join(dir, "closing.sock")
	ln2, err := net.Listen("unix", closing)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		for {
			c, err := ln2.Accept()
			if err != nil {
				return
			}
			// Read the request's head, then close without answering.
			buf := make([]byte, 4096)
			var got []byte
			for !bytes.Contains(got, []byte("\r\n\r\n")) {
				n, err := c.Read(buf)
				if err != nil {
					break
				}
				got = append(got, buf[:n]...)
			}
			c.Close()
		}
	}()
	_, err = (&Client{Path: closing}).Reload(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "virtbgp closed the connection without an answer") {
		t.Errorf("closing server: %v", err)
	}
}
