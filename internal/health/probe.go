package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/virtbgp/virtbgp/mapping"
)

// ErrCannotRun is what a probe's error wraps when the check cannot run at
// all (no guest agent channel, a target that is not an address), as
// opposed to a check that ran and failed.
var ErrCannotRun = errors.New("check cannot run")

// Agent is what the agent check needs of libvirt.
type Agent interface {
	// AgentPing sends guest-ping to the guest agent of the domain with this
	// UUID and waits at most timeout for the answer. An error wraps
	// ErrCannotRun when the domain has no guest agent channel.
	AgentPing(ctx context.Context, uuid string, timeout time.Duration) error
}

// target is what one probe checks: one check of one domain, for one IP.
type target struct {
	uuid, domain, vm string
	ip               netip.Addr
	check            mapping.Check
}

// maxBody is how much of an HTTP response a check reads.
const maxBody = 64 << 10

// httpConn is the connection an http check keeps to its target between
// runs (keep-alive), owned by the check's goroutine. Requests are written
// and responses parsed by net/http (Request.Write, ReadResponse) on this
// one connection, without http.Transport's two goroutines per connection
// and its per-request hand-offs: a thousand checks a second stay cheap.
type httpConn struct {
	url  string // the URL the connection and request are for
	req  *http.Request
	raw  []byte // req, written once
	addr string // host:port to dial
	tls  *tls.Config
	c    net.Conn
	br   *bufio.Reader
}

func (h *httpConn) close() {
	if h != nil && h.c != nil {
		h.c.Close()
		h.c, h.br = nil, nil
	}
}

// prepare makes h ready for u: the request and the address to dial.
func (h *httpConn) prepare(u string) error {
	if h.url == u && h.req != nil {
		return nil
	}
	h.close()
	pu, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%w: url %q: %v", ErrCannotRun, u, err)
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: url %q: %v", ErrCannotRun, u, err)
	}
	req.Header.Set("User-Agent", "virtbgp-health")
	port := pu.Port()
	if port == "" {
		port = "80"
		if pu.Scheme == "https" {
			port = "443"
		}
	}
	h.addr = net.JoinHostPort(pu.Hostname(), port)
	h.tls = nil
	if pu.Scheme == "https" {
		h.tls = &tls.Config{ServerName: pu.Hostname(), MinVersion: tls.VersionTLS12}
	}
	var raw bytes.Buffer
	if err := req.Write(&raw); err != nil {
		return fmt.Errorf("%w: url %q: %v", ErrCannotRun, u, err)
	}
	h.url, h.req, h.raw = u, req, raw.Bytes()
	return nil
}

// run runs one probe of t: the maintenance file first, then the check with
// its timeout.
func (m *Monitor) run(ctx context.Context, t *target, hc *httpConn) Result {
	c := &t.check
	start := time.Now()
	if c.Maintenance != "" {
		if _, err := os.Stat(c.Maintenance); err == nil {
			return Result{Outcome: InMaintenance, Detail: "maintenance file " + c.Maintenance + " exists", At: start}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var err error
	switch c.Kind {
	case mapping.CheckAgent:
		if m.agent == nil {
			err = fmt.Errorf("%w: no libvirt connection for guest agent checks", ErrCannotRun)
		} else {
			err = m.agent.AgentPing(ctx, t.uuid, c.Timeout)
		}
	case mapping.CheckTCP:
		err = probeTCP(ctx, c.Target(t.ip))
	case mapping.CheckHTTP:
		err = probeHTTP(ctx, c, c.Target(t.ip), hc)
	case mapping.CheckExec:
		err = probeExec(ctx, t)
	default:
		err = fmt.Errorf("%w: unknown check type %q", ErrCannotRun, c.Kind)
	}
	r := Result{Outcome: Pass, At: start, Took: time.Since(start)}
	switch {
	case err == nil:
		r.Detail = "ok"
	case errors.Is(err, ErrCannotRun):
		r.Outcome, r.Detail = CannotRun, err.Error()
	case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		r.Outcome, r.Detail = Fail, "timeout after "+c.Timeout.String()
	default:
		r.Outcome, r.Detail = Fail, err.Error()
	}
	return r
}

// probeTCP connects to addr and closes the connection.
func probeTCP(ctx context.Context, addr string) error {
	if _, err := netip.ParseAddrPort(addr); err != nil {
		return fmt.Errorf("%w: address %q: %v", ErrCannotRun, addr, err)
	}
	conn, err := (&net.Dialer{KeepAlive: -1}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return shortNetError(err)
	}
	return conn.Close()
}

// probeHTTP GETs u on hc's connection (dialled if there is none) and
// checks the status and the body. The connection stays open for the next
// run unless the server closes it or anything fails.
//
// A kept connection that the server closed since the last run (an idle
// timeout) fails before any response: that is retried once on a new
// connection, not counted as a failure of the service.
func probeHTTP(ctx context.Context, c *mapping.Check, u string, hc *httpConn) error {
	if err := hc.prepare(u); err != nil {
		return err
	}
	reused := hc.c != nil
	err := probeHTTPOnce(ctx, c, hc)
	if reused && errors.Is(err, errStaleConn) {
		err = probeHTTPOnce(ctx, c, hc)
	}
	if errors.Is(err, errStaleConn) {
		return errors.New("connection closed by the server")
	}
	return err
}

// errStaleConn: the connection failed before a response began.
var errStaleConn = errors.New("connection closed before a response")

func probeHTTPOnce(ctx context.Context, c *mapping.Check, hc *httpConn) (err error) {
	deadline, _ := ctx.Deadline()
	defer func() {
		if err != nil {
			hc.close()
		}
	}()
	if hc.c == nil {
		conn, err := (&net.Dialer{KeepAlive: -1, Deadline: deadline}).DialContext(ctx, "tcp", hc.addr)
		if err != nil {
			return shortNetError(err)
		}
		if hc.tls != nil {
			tc := tls.Client(conn, hc.tls)
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return fmt.Errorf("tls: %w", shortNetError(err))
			}
			conn = tc
		}
		hc.c, hc.br = conn, bufio.NewReaderSize(conn, 4096)
	}
	if err := hc.c.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := hc.c.Write(hc.raw); err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			return errStaleConn
		}
		return shortNetError(err)
	}
	resp, err := http.ReadResponse(hc.br, hc.req)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return errStaleConn
		}
		return shortNetError(err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read body: %w", shortNetError(err))
	}
	if resp.Close || len(body) == maxBody {
		hc.close() // the server closes, or the rest of the body is unread
	}
	if resp.StatusCode != c.Status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, c.Status)
	}
	if c.Body != "" && !bytes.Contains(body, []byte(c.Body)) {
		return fmt.Errorf("body lacks %q", c.Body)
	}
	return nil
}

// probeExec runs the check's command with the VM's name, UUID and IP in
// its environment; exit 0 is a pass. On timeout the command's whole
// process group is killed.
func probeExec(ctx context.Context, t *target) error {
	c := &t.check
	cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"VIRTBGP_DOMAIN=" + t.domain,
		"VIRTBGP_VM=" + t.vm,
		"VIRTBGP_UUID=" + t.uuid,
		"VIRTBGP_IP=" + t.ip.String(),
		"VIRTBGP_CHECK=" + c.Name,
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group this command leads
	}
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %v", ErrCannotRun, err)
	case errors.As(err, &ee) && ctx.Err() == nil:
		msg := "exit status " + strconv.Itoa(ee.ExitCode())
		if line := firstLine(out.Bytes()); line != "" {
			msg += ": " + line
		}
		return errors.New(msg)
	}
	return err
}

// firstLine is the first line of b, at most 200 bytes, for a reason.
func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(bytes.TrimSpace(b))
}

// shortNetError strips the URL and addresses an error repeats, keeping the
// cause ("connection refused"), so that a reason stays short and stable.
func shortNetError(err error) error {
	var se syscall.Errno
	if errors.As(err, &se) {
		return se
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
