package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"time"

	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/status"
)

// Client talks to a virtbgp daemon over its control socket, an HTTP client
// of the API. The zero value uses DefaultSocket and DefaultClientTimeout.
// Each call is one connection, and before sending anything the client
// checks, by SO_PEERCRED, that the process serving the socket is root (or
// this client's own uid): a socket that someone else put there gets
// nothing.
//
// Errors say what failed and how to fix it: "is virtbgp running? socket
// /run/virtbgp/control.sock: connection refused", "permission denied: the
// control socket is for root ...". An answer of the daemon that reports a
// failure is an *Error with its HTTP status.
type Client struct {
	// Path is the socket; "" means DefaultSocket.
	Path string
	// Timeout bounds each whole call unless ctx ends first; 0 means
	// DefaultClientTimeout.
	Timeout time.Duration

	// serverCred checks the server's credentials; nil means SO_PEERCRED
	// uid 0 or ours (tests set it).
	serverCred func(c net.Conn) error
}

// Status returns the daemon's status report.
func (c *Client) Status(ctx context.Context) (status.Report, error) {
	var r status.Report
	err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &r)
	return r, err
}

// Drain asks the daemon to drain the host and returns its message.
func (c *Client) Drain(ctx context.Context) (string, error) { return c.message(ctx, "/v1/drain") }

// Undrain asks the daemon to undo a drain and returns its message.
func (c *Client) Undrain(ctx context.Context) (string, error) { return c.message(ctx, "/v1/undrain") }

// Reload asks the daemon to reload its mapping and config and returns its
// message.
func (c *Client) Reload(ctx context.Context) (string, error) { return c.message(ctx, "/v1/reload") }

// ReloadForce is Reload that also confirms a mapping reload held because
// it would withdraw many routes.
func (c *Client) ReloadForce(ctx context.Context) (string, error) {
	var m Message
	err := c.Do(ctx, http.MethodPost, "/v1/reload", ReloadRequest{Force: true}, &m)
	return m.Message, err
}

// ManualRoutes returns the manual routes in force.
func (c *Client) ManualRoutes(ctx context.Context) ([]manual.Route, error) {
	var r ManualRoutes
	err := c.Do(ctx, http.MethodGet, "/v1/manual-routes", nil, &r)
	return r.Routes, err
}

// Announce announces (or renews) a manual route.
func (c *Client) Announce(ctx context.Context, req manual.Request) (manual.Route, error) {
	var r manual.Route
	err := c.Do(ctx, http.MethodPost, "/v1/manual-routes", req, &r)
	return r, err
}

// Withdraw withdraws the manual route of prefix and returns it.
func (c *Client) Withdraw(ctx context.Context, prefix string) (manual.Route, error) {
	var r manual.Route
	err := c.Do(ctx, http.MethodDelete, "/v1/manual-routes/"+prefix, nil, &r)
	return r, err
}

// Maintenance returns the maintenance entries in force.
func (c *Client) Maintenance(ctx context.Context) ([]maintenance.Entry, error) {
	var r MaintenanceList
	err := c.Do(ctx, http.MethodGet, "/v1/maintenance", nil, &r)
	return r.Entries, err
}

// MaintenanceOn puts a domain (a name or a UUID), or one route of it, in
// maintenance and returns the entry.
func (c *Client) MaintenanceOn(ctx context.Context, domain string, req maintenance.Request) (maintenance.Entry, error) {
	var e maintenance.Entry
	err := c.Do(ctx, http.MethodPut, "/v1/maintenance/"+url.PathEscape(domain), req, &e)
	return e, err
}

// MaintenanceOff ends the maintenance of a domain (ip empty), or of one
// route of it, and returns the entries removed.
func (c *Client) MaintenanceOff(ctx context.Context, domain, ip string) ([]maintenance.Entry, error) {
	path := "/v1/maintenance/" + url.PathEscape(domain)
	if ip != "" {
		path += "?" + url.Values{"ip": {ip}}.Encode()
	}
	var r MaintenanceList
	err := c.Do(ctx, http.MethodDelete, path, nil, &r)
	return r.Entries, err
}

func (c *Client) message(ctx context.Context, path string) (string, error) {
	var m Message
	err := c.Do(ctx, http.MethodPost, path, nil, &m)
	return m.Message, err
}

// Do sends one request, with body encoded as JSON if not nil, and decodes
// the answer of a success into result (nil discards it).
func (c *Client) Do(ctx context.Context, method, path string, body, result any) error {
	sock := c.Path
	if sock == "" {
		sock = DefaultSocket
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.Timeout, DefaultClientTimeout))
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://virtbgp"+path, rd)
	if err != nil {
		return fmt.Errorf("build the request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	check := c.serverCred
	if check == nil {
		check = checkServer
	}
	var dialErr error
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", sock)
			if err != nil {
				dialErr = dialError(ctx, sock, err)
				return nil, dialErr
			}
			if err := check(conn); err != nil {
				conn.Close()
				dialErr = fmt.Errorf("socket %s: %w", sock, err)
				return nil, dialErr
			}
			return conn, nil
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if dialErr != nil {
			return dialErr
		}
		return ioError(ctx, sock, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return ioError(ctx, sock, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("the daemon answered %s without a message", resp.Status)
		}
		return &Error{Status: resp.StatusCode, Field: eb.Field, Message: eb.Error}
	}
	if result != nil {
		if err := json.Unmarshal(data, result); err != nil {
			return fmt.Errorf("bad answer from virtbgp (socket %s): %w", sock, err)
		}
	}
	return nil
}

// checkServer accepts a server running as root or as this process's uid.
func checkServer(conn net.Conn) error {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("not a unix socket: %T", conn)
	}
	cr, err := peerCred(uc)
	if err != nil {
		return fmt.Errorf("cannot verify the server: %w", err)
	}
	if cr.uid != 0 && int(cr.uid) != os.Geteuid() {
		return fmt.Errorf("refusing to talk to it: the process serving it (pid %d) runs as uid %d, not root", cr.pid, cr.uid)
	}
	return nil
}

// dialError explains a failed connect.
func dialError(ctx context.Context, path string, err error) error {
	for _, e := range []syscall.Errno{syscall.ENOENT, syscall.ECONNREFUSED} {
		if errors.Is(err, e) {
			return fmt.Errorf("is virtbgp running? socket %s: %w", path, e)
		}
	}
	for _, e := range []syscall.Errno{syscall.EACCES, syscall.EPERM} {
		if errors.Is(err, e) {
			return fmt.Errorf("permission denied: the control socket is for root; run this as root (socket %s: %w)", path, e)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("connect to virtbgp (socket %s): %w", path, context.Cause(ctx))
	}
	return fmt.Errorf("connect to virtbgp (socket %s): %w", path, err)
}

// ioError explains a failed exchange on an established connection.
func ioError(ctx context.Context, path string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("virtbgp (socket %s): %w", path, context.Canceled)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("virtbgp did not answer in time (socket %s): %w", path, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "server closed"):
		return fmt.Errorf("virtbgp closed the connection without an answer (socket %s): %w", path, err)
	}
	return fmt.Errorf("exchange with virtbgp (socket %s): %w", path, err)
}
