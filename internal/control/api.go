package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/status"
)

// DefaultSocket is where the daemon listens and the CLI connects unless told
// otherwise.
const DefaultSocket = "/run/virtbgp/control.sock"

// Defaults of the Server and Client fields left zero.
const (
	// DefaultIOTimeout is how long the server waits for a whole request
	// (headers and body), and then for the answer to be written.
	DefaultIOTimeout = 5 * time.Second
	// DefaultOpTimeout is how long a Handler method may take.
	DefaultOpTimeout = 30 * time.Second
	// DefaultMaxRequestBytes is the largest request body the server reads.
	DefaultMaxRequestBytes = 16 << 10
	// DefaultMaxConns is how many connections each listener handles at
	// once; more wait in the listen backlog.
	DefaultMaxConns = 16
	// DefaultWriteRate is how many write calls per second the server
	// serves, with a burst of as many; more are answered 429.
	DefaultWriteRate = 10
	// DefaultClientTimeout is how long a client waits for the whole
	// exchange when its context has no earlier deadline. It is longer than
	// DefaultOpTimeout so that the daemon's own timeout error gets through.
	DefaultClientTimeout = DefaultOpTimeout + 2*DefaultIOTimeout
)

// The operations, as logs and errors name them.
const (
	OpStatus   = "status"
	OpPeers    = "peers"
	OpDomains  = "domains"
	OpRoutes   = "routes"
	OpDrain    = "drain"
	OpUndrain  = "undrain"
	OpReload   = "reload"
	OpManual   = "manual-routes"
	OpAnnounce = "announce"
	OpWithdraw = "withdraw"
	// The maintenance switch: list, on, off.
	OpMaintenance    = "maintenance"
	OpMaintenanceOn  = "maintenance-on"
	OpMaintenanceOff = "maintenance-off"
)

// maxResponseBytes bounds what a client reads; a status report of many
// thousands of routes fits easily.
const maxResponseBytes = 64 << 20

// Message is the answer of drain, undrain and reload.
type Message struct {
	Message string `json:"message"`
}

// ReloadRequest is the optional body of POST /v1/reload.
type ReloadRequest struct {
	// Force confirms a mapping reload held because it withdraws too many
	// routes.
	Force bool `json:"force,omitempty"`
}

// ManualRoutes is the answer of GET /v1/manual-routes.
type ManualRoutes struct {
	Routes []manual.Route `json:"routes"`
}

// MaintenanceList is the answer of GET /v1/maintenance (the entries in
// force) and of DELETE /v1/maintenance/{domain} (the entries removed).
type MaintenanceList struct {
	Entries []maintenance.Entry `json:"entries"`
}

// ErrorBody is the answer of every failure: what went wrong and, for bad
// input, the field of the request it is about (a JSON name, like
// "communities[1]").
type ErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// Handler carries out the operations; the daemon implements it. Its methods
// may be called concurrently, from one goroutine per request. The context
// ends when the operation times out or the server shuts down.
//
// The strings returned by Drain, Undrain and Reload are messages for the
// operator, printed as they are by the CLI, like
// "draining: routes carry GRACEFUL_SHUTDOWN, withdrawing in 60s". An error's
// text is shown to the operator too; an *Error, or a *manual.FieldError,
// chooses the HTTP status (else 500).
type Handler interface {
	Status(ctx context.Context) (status.Report, error)
	Drain(ctx context.Context) (string, error)
	Undrain(ctx context.Context) (string, error)
	Reload(ctx context.Context) (string, error)
	// ReloadForce is Reload that also applies a mapping reload held
	// because it would withdraw more of the announced routes than
	// mapping.max-withdraw-percent allows (POST /v1/reload {"force": true},
	// `virtbgp reload --force`).
	ReloadForce(ctx context.Context) (string, error)
	// ManualRoutes returns the manual routes in force, sorted by prefix.
	ManualRoutes(ctx context.Context) ([]manual.Route, error)
	// Announce validates the request and puts the manual route in force
	// (or renews it); who is the caller, for the route's record.
	Announce(ctx context.Context, who string, req manual.Request) (manual.Route, error)
	// Withdraw removes the manual route of the prefix and returns it; an
	// *Error with 404 if there is none.
	Withdraw(ctx context.Context, who string, prefix string) (manual.Route, error)
	// Maintenance returns the maintenance entries in force, sorted by
	// domain.
	Maintenance(ctx context.Context) ([]maintenance.Entry, error)
	// MaintenanceOn puts the domain (a name or a UUID), or the one route
	// req.IP names, in maintenance, or sets it again (a new note or TTL);
	// who is the caller, for the entry's record. An unknown domain is a
	// 404, a route not of the domain a 422 (*Error with the field).
	MaintenanceOn(ctx context.Context, who, domain string, req maintenance.Request) (maintenance.Entry, error)
	// MaintenanceOff ends the maintenance of the domain: of every entry of
	// it with ip empty, else of the entry of that route; it returns the
	// entries removed, or an *Error with 404 if there are none.
	MaintenanceOff(ctx context.Context, who, domain, ip string) ([]maintenance.Entry, error)
}

// Error is a failure with its HTTP status: the Handler returns it to
// answer 4xx (a conflict, a missing route), the Client returns it for any
// failure the daemon answered.
type Error struct {
	Status  int    // HTTP status
	Field   string // the request's field at fault, if any
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf is an *Error with status and a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// DaemonError is a failure reported by the daemon (the client's view of an
// *Error): it received the request and answered with an error, including
// its refusal of a client.
type DaemonError = Error

// asError turns a Handler error into an *Error with its status.
func asError(op string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var fe *manual.FieldError
	if errors.As(err, &fe) {
		return &Error{Status: http.StatusBadRequest, Field: fe.Field, Message: fe.Error()}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("%s: the daemon is shutting down: %v", op, err)}
	}
	return &Error{Status: http.StatusInternalServerError, Message: err.Error()}
}
