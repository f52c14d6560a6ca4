package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// ErrInUse is returned by Listen when a server already answers on the
// socket: another virtbgp is running.
var ErrInUse = errors.New("another virtbgp is already listening there")

// Server serves the HTTP API on the control unix socket (to root, by
// SO_PEERCRED) and, with TCP set, on a TCP listener (to bearer tokens and
// client certificates). Set its fields, then call Listen (which fails fast
// if the socket is in use, so call it before starting anything else), and
// ListenTCP if wanted, then Serve. The fields must not change after Listen.
type Server struct {
	// Handler carries out the operations. Required.
	Handler Handler
	// Log receives refusals, bad requests and the write operations with
	// the client's uid and pid or token name. Nil discards.
	Log *slog.Logger
	// IOTimeout bounds reading the request and, separately, writing the
	// answer; 0 means DefaultIOTimeout.
	IOTimeout time.Duration
	// OpTimeout bounds one Handler call; 0 means DefaultOpTimeout.
	OpTimeout time.Duration
	// MaxRequestBytes is the largest request body accepted; 0 means
	// DefaultMaxRequestBytes.
	MaxRequestBytes int
	// MaxConns is how many connections each listener handles at once; 0
	// means DefaultMaxConns.
	MaxConns int
	// WriteRate is how many write calls per second are served (a burst of
	// as many); 0 means DefaultWriteRate.
	WriteRate int
	// ReadGroup, if not nil, is the gid of a group whose members may use
	// the read calls on the unix socket (status, peers, domains, routes,
	// manual routes): the socket is then mode 0660 and of that group, and a
	// directory Listen creates 0750. Root alone may write.
	ReadGroup *uint32
	// Tokens are the bearer tokens the TCP listener accepts.
	Tokens []Token
	// TLS, if set, makes the TCP listener speak TLS; with ClientCAs set, a
	// verified client certificate is read-write access.
	TLS *tls.Config

	// creds tells who is at the other end of a unix connection; nil means
	// SO_PEERCRED (tests set it).
	creds func(net.Conn) (cred, error)

	mu      sync.Mutex
	ln      net.Listener
	tcp     net.Listener
	path    string
	file    os.FileInfo // the socket file Listen created, to remove only that
	closed  bool
	serving bool
	cancel  context.CancelFunc // ends the handlers' context (set by Serve)
	servers []*http.Server
	limit   *limiter
	mux     *http.ServeMux
}

// Token is a bearer token of the TCP listener.
type Token struct {
	Name   string // who it is, in logs and records; never the secret
	Secret string
	Write  bool // read-write; else read-only
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
	if err := ensureDir(filepath.Dir(path), s.ReadGroup); err != nil {
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
	mode := os.FileMode(0o600)
	if s.ReadGroup != nil {
		if err := os.Chown(path, -1, int(*s.ReadGroup)); err != nil {
			return fail(err)
		}
		mode = 0o660
	}
	if err := os.Chmod(path, mode); err != nil {
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

// ensureDir creates dir with mode 0700 if it does not exist (0750 and of
// the group, with a read group).
func ensureDir(dir string, group *uint32) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("control socket directory: %w", err)
		}
		if group != nil {
			if err := os.Chown(dir, -1, int(*group)); err != nil {
				return fmt.Errorf("control socket directory: %w", err)
			}
			if err := os.Chmod(dir, 0o750); err != nil {
				return fmt.Errorf("control socket directory: %w", err)
			}
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

// ListenTCP opens the TCP listener at addr (after Listen). It serves the
// same API, to the Tokens and, with TLS, to client certificates.
func (s *Server) ListenTCP(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil || s.closed || s.serving {
		return errors.New("control: ListenTCP must come after Listen and before Serve")
	}
	if len(s.Tokens) == 0 && (s.TLS == nil || s.TLS.ClientCAs == nil) {
		return errors.New("control: the TCP listener needs tokens or client certificates")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("API listener %s: %w", addr, err)
	}
	s.tcp = ln
	s.log().Info("API listening on TCP", "address", ln.Addr().String(), "tls", s.TLS != nil, "tokens", len(s.Tokens))
	return nil
}

// TCPAddr is the TCP listener's address (nil without one).
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// Serve serves the API until ctx ends or Close is called, then cancels the
// handlers in progress, waits for them to answer, removes the socket file
// and returns nil. It returns an error if Listen did not succeed, if Serve
// was called already, or if a listener fails for good; the socket is
// removed in every case.
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
	s.limit = newLimiter(orDefault(s.WriteRate, DefaultWriteRate))
	s.mux = s.routes()
	type listener struct {
		ln   net.Listener
		kind string
	}
	lns := []listener{{s.ln, kindUnix}}
	if s.tcp != nil {
		lns = append(lns, listener{s.tcp, kindTCP})
	}
	for _, l := range lns {
		s.servers = append(s.servers, s.httpServer(ctx, l.kind))
	}
	servers, closed := slices.Clone(s.servers), s.closed
	s.mu.Unlock()
	if closed {
		cancel()
		return nil
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()

	errs := make(chan error, len(lns))
	for i, l := range lns {
		go func() {
			var ln net.Listener = &limitListener{Listener: l.ln, sem: make(chan struct{}, s.maxConns())}
			if l.kind == kindTCP && s.TLS != nil {
				// Outermost, so that net/http sees a *tls.Conn and fills
				// in Request.TLS.
				ln = tls.NewListener(ln, s.TLS)
			}
			err := servers[i].Serve(ln)
			if errors.Is(err, http.ErrServerClosed) || s.isClosed() {
				err = nil
			}
			errs <- err
		}()
	}
	var first error
	for range lns {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("control API: %w", err)
			s.Close()
		}
	}
	s.Close() // (waits for a Close in progress to remove the socket)
	return first
}

// httpServer is the http.Server of one listener.
func (s *Server) httpServer(ctx context.Context, kind string) *http.Server {
	return &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.ioTimeout(),
		ReadTimeout:       s.ioTimeout(),
		WriteTimeout:      s.opTimeout() + s.ioTimeout(),
		IdleTimeout:       s.ioTimeout(),
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(s.log().Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			cc := &connInfo{kind: kind}
			if kind == kindUnix {
				cc.cred, cc.credErr = s.peerCred(c)
			}
			return context.WithValue(ctx, connKey{}, cc)
		},
	}
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
	var err error
	if len(s.servers) > 0 {
		// Shutdown closes the listeners, then waits for the requests in
		// progress, whose context was just cancelled.
		sctx, cancel := context.WithTimeout(context.Background(), s.ioTimeout())
		for _, srv := range s.servers {
			if serr := srv.Shutdown(sctx); serr != nil {
				srv.Close()
			}
		}
		cancel()
	} else {
		err = s.ln.Close()
		if s.tcp != nil {
			s.tcp.Close()
		}
	}
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

// peerCred tells who is at the other end of c.
func (s *Server) peerCred(c net.Conn) (cred, error) {
	if s.creds != nil {
		return s.creds(c)
	}
	if lc, ok := c.(*limitConn); ok {
		c = lc.Conn
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return cred{}, fmt.Errorf("peer credentials of a %T: not a unix socket", c)
	}
	return peerCred(uc)
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

// limitListener accepts at most cap(sem) connections at once.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
