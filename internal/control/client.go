package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/virtbgp/virtbgp/internal/status"
)

// Client talks to a virtbgp daemon over its control socket. The zero value
// uses DefaultSocket and DefaultClientTimeout. Each call is one connection.
//
// Errors say what failed and how to fix it: "is virtbgp running? socket
// /run/virtbgp/control.sock: connection refused", "permission denied: the
// control socket is for root ...". An answer of the daemon that reports a
// failure is a *DaemonError.
type Client struct {
	// Path is the socket; "" means DefaultSocket.
	Path string
	// Timeout bounds each whole call unless ctx ends first; 0 means
	// DefaultClientTimeout.
	Timeout time.Duration
}

// DaemonError is a failure reported by the daemon: it received the request
// and answered with an error (including its refusal of a non-root client).
type DaemonError struct {
	Op      string // the request's op
	Message string // the daemon's error text
}

func (e *DaemonError) Error() string { return e.Message }

// Status returns the daemon's status report.
func (c *Client) Status(ctx context.Context) (status.Report, error) {
	var r status.Report
	err := c.Do(ctx, OpStatus, &r)
	return r, err
}

// Drain asks the daemon to drain the host and returns its message.
func (c *Client) Drain(ctx context.Context) (string, error) { return c.message(ctx, OpDrain) }

// Undrain asks the daemon to undo a drain and returns its message.
func (c *Client) Undrain(ctx context.Context) (string, error) { return c.message(ctx, OpUndrain) }

// Reload asks the daemon to reload its mapping and config and returns its
// message.
func (c *Client) Reload(ctx context.Context) (string, error) { return c.message(ctx, OpReload) }

// ReloadForce is Reload that also confirms a mapping reload held because
// it would withdraw many routes.
func (c *Client) ReloadForce(ctx context.Context) (string, error) {
	return c.message(ctx, OpReloadForce)
}

func (c *Client) message(ctx context.Context, op string) (string, error) {
	var msg string
	err := c.Do(ctx, op, &msg)
	return msg, err
}

// Do sends the request op and decodes the result of a successful answer
// into result (which may be nil to discard it).
func (c *Client) Do(ctx context.Context, op string, result any) error {
	path := c.Path
	if path == "" {
		path = DefaultSocket
	}
	timeout := orDefault(c.Timeout, DefaultClientTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return dialError(ctx, path, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	// Cancelling ctx unblocks the reads and writes below at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req, err := json.Marshal(Request{Op: op})
	if err != nil {
		return fmt.Errorf("encode the request: %w", err)
	}
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return ioError(ctx, path, "send the request", err)
	}
	if uc, ok := conn.(*net.UnixConn); ok {
		_ = uc.CloseWrite() // nothing more to send
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(conn, maxResponseBytes)).Decode(&resp); err != nil {
		return ioError(ctx, path, "read the answer", err)
	}
	if !resp.OK {
		msg := resp.Error
		if msg == "" {
			msg = "the daemon reported a failure without a message"
		}
		return &DaemonError{Op: op, Message: msg}
	}
	if result != nil {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("bad answer from virtbgp (socket %s): %w", path, err)
		}
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
func ioError(ctx context.Context, path, what string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("%s (socket %s): %w", what, path, context.Canceled)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("virtbgp did not answer in time (socket %s): %w", path, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("virtbgp closed the connection without an answer (socket %s): %w", path, err)
	}
	return fmt.Errorf("%s (socket %s): %w", what, path, err)
}
