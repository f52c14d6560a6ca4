package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// ErrInUse is returned by Listen when a server already answers on the
// socket: another virtbgp is running.
var ErrInUse = errors.New("another virtbgp is already listening there")

// Server serves the control channel on a unix socket. Set its fields, then
// call Listen (which fails fast if the socket is in use, so call it before
// starting anything else) and Serve. The fields must not change after
// Listen.
type Server struct {
	// Handler carries out the operations. Required.
	Handler Handler
	// Log receives refusals, bad requests and the write operations (drain,
	// undrain, reload) with the client's uid and pid. Nil discards.
	Log *slog.Logger
	// IOTimeout bounds reading the request and, separately, writing the
	// answer; 0 means DefaultIOTimeout.
	IOTimeout time.Duration
	// OpTimeout bounds one Handler call; 0 means DefaultOpTimeout.
	OpTimeout time.Duration
	// MaxRequestBytes is the largest request accepted; 0 means
	// DefaultMaxRequestBytes.
	MaxRequestBytes int
	// MaxConns is how many connections are handled at once; 0 means
	// DefaultMaxConns.
	MaxConns int

	// creds tells who is at the other end of a connection; nil means
	// SO_PEERCRED (tests set it for in-memory connections).
	creds func(net.Conn) (cred, error)

	mu      sync.Mutex
	ln      net.Listener
	path    string
	file    os.FileInfo // the socket file Listen created, to remove only that
	closed  bool
	serving bool
	cancel  context.CancelFunc // ends the handlers' context (set by Serve)
}

// Serve is Listen and Serve in one call: it serves the control channel on
// path until ctx ends, then removes the socket and returns nil.
func Serve(ctx context.Context, path string, h Handler, log *slog.Logger) error {
	s := &Server{Handler: h, Log: log}
	if err := s.Listen(path); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Listen creates the control socket at path (DefaultSocket if empty):
//
//   - it creates the parent directory, mode 0700, if it does not exist (an
//     existing directory is left as it is);
//   - if a file is at path already, it replaces it only if it is a socket
//     nobody answers on (a stale one left by a killed daemon); if a server
//     answers there, it returns an error wrapping ErrInUse, and if it is not
//     a socket, an error, leaving the file alone;
//   - it listens there and makes the socket mode 0600.
//
// Until the chmod the socket has the mode the umask gives it; that window
// is harmless because every client's uid is checked anyway.
func (s *Server) Listen(path string) error {
	if s.Handler == nil {
		return errors.New("control: Server.Handler is nil")
	}
	if path == "" {
		path = DefaultSocket
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil || s.closed {
		return errors.New("control: Listen called twice")
	}
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return err
	}
	if err := removeStale(path, s.log()); err != nil {
		return err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	// Close removes the file itself, and only if it is still this one.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) error {
		ln.Close()
		os.Remove(path)
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	s.ln, s.path, s.file = ln, path, fi
	s.log().Debug("control socket listening", "path", path)
	return nil
}

// Path is the socket's path ("" before Listen).
func (s *Server) Path() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// ensureDir creates dir with mode 0700 if it does not exist.
func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("control socket directory: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("control socket directory: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("control socket directory %s: not a directory", dir)
	}
	return nil
}

// removeStale removes a socket file at path that nobody answers on. It
// fails if a server answers there or if the file is not a socket.
func removeStale(path string, log *slog.Logger) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: exists and is not a socket (%s); refusing to replace it", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: %w", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: cannot tell whether it is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
	}
	log.Info("removed a stale control socket", "path", path)
	return nil
}

// Serve accepts connections until ctx ends or Close is called, then waits
// for the connections in progress (their handlers' context is cancelled),
// removes the socket file and returns nil. It returns an error if Listen
// did not succeed, if Serve was called already, or if accepting fails for
// good; the socket is removed in every case.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.ln == nil:
		s.mu.Unlock()
		return errors.New("control: Serve before Listen")
	case s.serving:
		s.mu.Unlock()
		return errors.New("control: Serve called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	s.serving, s.cancel = true, cancel
	ln, closed := s.ln, s.closed
	s.mu.Unlock()
	if closed {
		cancel()
		return nil
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer func() {
		s.Close()
		wg.Wait()
	}()
	sem := make(chan struct{}, s.maxConns())
	var backoff time.Duration
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			<-sem
			if s.isClosed() {
				return nil
			}
			if !retryAccept(err) {
				return fmt.Errorf("control socket %s: accept: %w", s.path, err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log().Warn("accept failed; retrying", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.serveConn(ctx, c)
		}()
	}
}

// retryAccept tells the accept errors that may go away (out of file
// descriptors or memory, a client gone before it was accepted).
func retryAccept(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Close stops the server: it closes the listener, cancels the handlers of
// connections in progress and removes the socket file, if the file is still
// the one Listen created. Serve then returns once those connections are
// done. Close may be called more than once, and without Serve.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.cancel != nil {
		s.cancel()
	}
	if s.ln == nil {
		return nil
	}
	err := s.ln.Close()
	if fi, lerr := os.Lstat(s.path); lerr == nil && os.SameFile(fi, s.file) {
		if rerr := os.Remove(s.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("control socket %s: close: %w", s.path, err)
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// cred is who is at the other end of a connection.
type cred struct {
	pid      int32
	uid, gid uint32
}

// errEmpty is a connection closed before sending anything (like the probe
// of a server checking whether the socket is in use).
var errEmpty = errors.New("empty request")

// peerCred tells who is at the other end of c.
func (s *Server) peerCred(c net.Conn) (cred, error) {
	if s.creds != nil {
		return s.creds(c)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return cred{}, fmt.Errorf("peer credentials of a %T: not a unix socket", c)
	}
	return peerCred(uc)
}

// serveConn handles one connection: credentials, request, operation, answer.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(s.ioTimeout()))
	log := s.log()
	who, credErr := s.peerCred(c)
	if credErr == nil {
		log = log.With("uid", who.uid, "gid", who.gid, "pid", who.pid)
	}
	// The request is read even from a client about to be refused, so that
	// it gets its answer rather than a reset connection.
	req, reqErr := s.readRequest(c)
	switch {
	case credErr != nil:
		log.Warn("client refused", "reason", "unknown credentials", "op", req.Op, "error", credErr)
		s.reply(c, log, nil, errors.New("permission denied: cannot verify the client's credentials"))
		return
	case who.uid != 0:
		log.Warn("client refused", "reason", "not root", "op", req.Op)
		s.reply(c, log, nil, fmt.Errorf("permission denied: the control socket is for root (you are uid %d)", who.uid))
		return
	case errors.Is(reqErr, errEmpty):
		log.Debug("connection closed without a request")
		return
	case reqErr != nil:
		log.Warn("bad request", "error", reqErr)
		s.reply(c, log, nil, reqErr)
		return
	}
	result, err := s.call(ctx, log, req.Op)
	switch {
	case err != nil:
		log.Warn("request failed", "op", req.Op, "error", err)
	case req.Op == OpStatus:
		log.Debug("request served", "op", req.Op)
	default:
		log.Info("request served", "op", req.Op, "result", result)
	}
	s.reply(c, log, result, err)
}

// readRequest reads and decodes one request within the size limit and the
// read deadline.
func (s *Server) readRequest(c net.Conn) (Request, error) {
	limit := s.maxRequestBytes()
	lr := &io.LimitedReader{R: c, N: int64(limit)}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	var req Request
	err := dec.Decode(&req)
	switch {
	case err == nil:
		return req, nil
	case lr.N <= 0:
		return Request{}, fmt.Errorf("request too large: the limit is %d bytes", limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Request{}, fmt.Errorf("timeout: no complete request within %s", s.ioTimeout())
	case errors.Is(err, io.EOF) && lr.N == int64(limit):
		return Request{}, errEmpty
	}
	return Request{}, fmt.Errorf("bad request: %w", err)
}

// call runs one operation on the Handler with the operation timeout; a
// panic in the Handler becomes an error.
func (s *Server) call(ctx context.Context, log *slog.Logger, op string) (result any, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.opTimeout())
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			log.Error("handler panicked", "op", op, "panic", p, "stack", string(debug.Stack()))
			result, err = nil, fmt.Errorf("internal error in %s: %v", op, p)
		}
	}()
	h := s.Handler
	switch op {
	case OpStatus:
		return h.Status(ctx)
	case OpDrain:
		return h.Drain(ctx)
	case OpUndrain:
		return h.Undrain(ctx)
	case OpReload:
		return h.Reload(ctx)
	case OpReloadForce:
		return h.ReloadForce(ctx)
	}
	return nil, fmt.Errorf("unknown op %q: want %s, %s, %s, %s or %s", op, OpStatus, OpDrain, OpUndrain, OpReload, OpReloadForce)
}

// reply writes the answer: result if err is nil, else err's text.
func (s *Server) reply(c net.Conn, log *slog.Logger, result any, err error) {
	resp := Response{OK: err == nil}
	if err == nil {
		raw, merr := json.Marshal(result)
		if merr != nil {
			resp = Response{Error: fmt.Sprintf("internal error: encode the result: %v", merr)}
		} else {
			resp.Result = raw
		}
	} else {
		resp.Error = err.Error()
	}
	b, merr := json.Marshal(resp)
	if merr != nil { // not with these types
		log.Error("cannot encode the answer", "error", merr)
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(s.ioTimeout()))
	if _, werr := c.Write(append(b, '\n')); werr != nil {
		log.Warn("cannot write the answer", "error", werr)
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) ioTimeout() time.Duration { return orDefault(s.IOTimeout, DefaultIOTimeout) }
func (s *Server) opTimeout() time.Duration { return orDefault(s.OpTimeout, DefaultOpTimeout) }
func (s *Server) maxRequestBytes() int     { return orDefault(s.MaxRequestBytes, DefaultMaxRequestBytes) }
func (s *Server) maxConns() int            { return orDefault(s.MaxConns, DefaultMaxConns) }
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
