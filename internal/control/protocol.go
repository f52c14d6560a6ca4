package control

import (
	"context"
	"encoding/json"
	"time"

	"github.com/virtbgp/virtbgp/internal/status"
)

// DefaultSocket is where the daemon listens and the CLI connects unless told
// otherwise.
const DefaultSocket = "/run/virtbgp/control.sock"

// Defaults of the Server and Client fields left zero.
const (
	// DefaultIOTimeout is how long the server waits for a whole request,
	// and then for the answer to be written.
	DefaultIOTimeout = 5 * time.Second
	// DefaultOpTimeout is how long a Handler method may take.
	DefaultOpTimeout = 30 * time.Second
	// DefaultMaxRequestBytes is the largest request the server reads.
	DefaultMaxRequestBytes = 4096
	// DefaultMaxConns is how many connections the server handles at once;
	// more wait in the listen backlog.
	DefaultMaxConns = 16
	// DefaultClientTimeout is how long a client waits for the whole
	// exchange when its context has no earlier deadline. It is longer than
	// DefaultOpTimeout so that the daemon's own timeout error gets through.
	DefaultClientTimeout = DefaultOpTimeout + 2*DefaultIOTimeout
)

// The operations of the protocol, the "op" of a Request.
const (
	OpStatus  = "status"
	OpDrain   = "drain"
	OpUndrain = "undrain"
	OpReload  = "reload"
	// OpReloadForce is reload that also applies a mapping the
	// mass-withdraw guard holds (`virtbgp reload --force`).
	OpReloadForce = "reload-force"
)

// maxResponseBytes bounds what a client reads; a status report of many
// thousands of routes fits easily.
const maxResponseBytes = 64 << 20

// Request is what a client sends.
type Request struct {
	Op string `json:"op"`
}

// Response is what the server answers. When OK, Result is the operation's
// result (a status.Report for status, a JSON string otherwise); when not,
// Error says what went wrong.
type Response struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Handler carries out the operations; the daemon implements it. Its methods
// may be called concurrently, from one goroutine per connection. The
// context ends when the operation times out or the server shuts down.
//
// The strings returned by Drain, Undrain and Reload are messages for the
// operator, printed as they are by the CLI, like
// "draining: routes carry GRACEFUL_SHUTDOWN, withdrawing in 60s". An error's
// text is shown to the operator too.
type Handler interface {
	Status(ctx context.Context) (status.Report, error)
	Drain(ctx context.Context) (string, error)
	Undrain(ctx context.Context) (string, error)
	Reload(ctx context.Context) (string, error)
	// ReloadForce is Reload confirming a reload that withdraws many
	// routes.
	ReloadForce(ctx context.Context) (string, error)
}
