package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/virtbgp/virtbgp/internal/testutil"
)

// The server's timer logic (the I/O and operation timeouts, the accept
// backoff) and its connection cap, on testing/synctest's fake clock: the
// server runs on in-memory connections (net.Pipe), whose clients are root.

// pipeListener is a net.Listener of net.Pipe connections.
type pipeListener struct {
	conns     chan net.Conn // the backlog
	errs      chan error    // errors Accept returns, before anything else
	closed    chan struct{}
	closeOnce sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn, 16), errs: make(chan error, 16), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case err := <-l.errs:
		return nil, err
	default:
	}
	select {
	case err := <-l.errs:
		return nil, err
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

// pipeServer is a Server serving a pipeListener.
type pipeServer struct {
	*Server
	h    *fakeHandler
	logs *testutil.SyncBuffer
	ln   *pipeListener
	done chan error // Serve's result
}

// startPipeServer starts a server in the calling bubble; stop it with the
// returned function before the bubble ends.
func startPipeServer(t *testing.T, configure func(*Server)) (*pipeServer, func()) {
	t.Helper()
	log, logs := testutil.Logger()
	ps := &pipeServer{h: &fakeHandler{report: testReport()}, logs: logs, ln: newPipeListener(), done: make(chan error, 1)}
	ps.Server = &Server{Handler: ps.h, Log: log, creds: func(net.Conn) (cred, error) { return cred{pid: 1}, nil }}
	if configure != nil {
		configure(ps.Server)
	}
	ps.Server.ln = ps.ln
	ctx, cancel := context.WithCancel(context.Background())
	go func() { ps.done <- ps.Serve(ctx) }()
	return ps, func() {
		cancel()
		if err := <-ps.done; err != nil {
			t.Errorf("Serve = %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ps.logs)
		}
	}
}

// exchange connects, sends req and returns the answer, read until the
// server closes the connection, once it comes.
func (ps *pipeServer) exchange(req string) <-chan Response {
	client, server := net.Pipe()
	ps.ln.conns <- server
	out := make(chan Response, 1)
	go func() {
		defer client.Close()
		if _, err := client.Write([]byte(req)); err != nil {
			out <- Response{Error: "test client: write: " + err.Error()}
			return
		}
		raw, err := io.ReadAll(client)
		if err != nil {
			out <- Response{Error: "test client: read: " + err.Error()}
			return
		}
		var r Response
		if err := json.Unmarshal(raw, &r); err != nil {
			out <- Response{Error: "test client: answer " + string(raw) + ": " + err.Error()}
			return
		}
		out <- r
	}()
	return out
}

func TestSlowClientTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps, stop := startPipeServer(t, func(s *Server) { s.IOTimeout = 200 * time.Millisecond })
		defer stop()
		start := time.Now()
		slow := ps.exchange(`{"op":`) // and then nothing
		// Other clients are served meanwhile.
		if r := <-ps.exchange(`{"op":"status"}` + "\n"); !r.OK || time.Since(start) >= 200*time.Millisecond {
			t.Errorf("status meanwhile: %+v after %v", r, time.Since(start))
		}
		r := <-slow // the server answers and closes
		if elapsed := time.Since(start); elapsed != 200*time.Millisecond {
			t.Errorf("answered after %v, want the I/O timeout, 200ms", elapsed)
		}
		if r.OK || r.Error != "timeout: no complete request within 200ms" {
			t.Errorf("answer %+v, want the timeout error", r)
		}
		if n := ps.h.total(); n != 1 {
			t.Errorf("handler called %d times, want once (the status meanwhile)", n)
		}
		// And after.
		if r := <-ps.exchange(`{"op":"status"}` + "\n"); !r.OK {
			t.Errorf("status after a slow client: %+v", r)
		}
	})
}

func TestOpTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps, stop := startPipeServer(t, func(s *Server) { s.OpTimeout = 100 * time.Millisecond })
		defer stop()
		ps.h.block = true
		ps.h.ctxErr = make(chan error, 1)
		start := time.Now()
		r := <-ps.exchange(`{"op":"drain"}` + "\n")
		if elapsed := time.Since(start); elapsed != 100*time.Millisecond {
			t.Errorf("answered after %v, want the operation timeout, 100ms", elapsed)
		}
		if r.OK || r.Error != context.DeadlineExceeded.Error() {
			t.Errorf("answer %+v, want the daemon's deadline error", r)
		}
		if got := <-ps.h.ctxErr; !errors.Is(got, context.DeadlineExceeded) {
			t.Errorf("handler ctx ended with %v", got)
		}
	})
}

// MaxConns connections are handled at once; the next waits (in the
// backlog) until one is done.
func TestMaxConns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps, stop := startPipeServer(t, func(s *Server) { s.MaxConns = 2 })
		defer stop()
		ps.h.hold = make(chan struct{})
		var answers []<-chan Response
		for range 3 {
			answers = append(answers, ps.exchange(`{"op":"status"}`+"\n"))
		}
		synctest.Wait()
		if n := ps.h.total(); n != 2 {
			t.Fatalf("%d handlers running with MaxConns 2, want 2", n)
		}
		ps.h.hold <- struct{}{} // one is done
		synctest.Wait()
		if n := ps.h.total(); n != 3 {
			t.Fatalf("%d handlers after one was done, want 3", n)
		}
		close(ps.h.hold)
		for _, a := range answers {
			if r := <-a; !r.OK {
				t.Errorf("answer %+v", r)
			}
		}
	})
}

// Accept errors that may go away are retried with a backoff that doubles
// from 5ms; others end Serve.
func TestAcceptBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps, _ := startPipeServer(t, nil)
		for range 3 {
			ps.ln.errs <- syscall.EMFILE
		}
		start := time.Now()
		if r := <-ps.exchange(`{"op":"status"}` + "\n"); !r.OK {
			t.Errorf("answer %+v", r)
		}
		if elapsed := time.Since(start); elapsed != (5+10+20)*time.Millisecond {
			t.Errorf("served after %v, want the backoff of three accept failures, 35ms", elapsed)
		}
		logs := ps.logs.String()
		for _, want := range []string{"retry_in=5ms", "retry_in=10ms", "retry_in=20ms"} {
			if !strings.Contains(logs, `msg="accept failed; retrying" error="too many open files" `+want) {
				t.Errorf("log lacks the retry %s:\n%s", want, logs)
			}
		}
		boom := errors.New("boom")
		ps.ln.errs <- boom
		if err := <-ps.done; !errors.Is(err, boom) {
			t.Errorf("Serve = %v, want the accept error", err)
		}
	})
}
