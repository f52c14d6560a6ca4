// Package control is virtbgp's local control channel: the unix socket behind
// `virtbgp status`, `virtbgp drain`, `virtbgp undrain` and `virtbgp reload`.
//
// Only root may use it. Two locks guard it: the socket file is mode 0600 (in
// a directory created 0700 when the server creates it), and the server asks
// the kernel who is at the other end of every connection (SO_PEERCRED) and
// serves only uid 0. The second check is the authority: it holds even if
// the file's mode or its directory's is loosened, and a root user inside an
// unprivileged user namespace is seen as its unprivileged host uid. Refused
// clients get an error answer, and are logged with their uid, gid and pid.
//
// # Protocol
//
// One request and one answer per connection, each a single JSON object
// (newline-terminated; the client may also half-close after the request):
//
//	-> {"op":"status"}                       "status", "drain", "undrain" or "reload"
//	<- {"ok":true,"result":{...}}            status: a status.Report
//	<- {"ok":true,"result":"draining: ..."}  drain, undrain, reload: a message for humans
//	<- {"ok":false,"error":"..."}            any failure, refusal included
//
// Unknown fields in a request are errors. A request larger than
// [DefaultMaxRequestBytes] or not complete within [DefaultIOTimeout] is
// answered with an error and the connection is closed; a handler gets
// [DefaultOpTimeout] to finish. (The Server fields override these.)
//
// # Use
//
// The daemon:
//
//	srv := &control.Server{Handler: h, Log: log.With("part", "control")}
//	if err := srv.Listen(control.DefaultSocket); err != nil {
//		return err // e.g. another virtbgp is already listening there
//	}
//	go srv.Serve(ctx) // returns when ctx ends; the socket file is removed
//
// The CLI:
//
//	msg, err := (&control.Client{Path: control.DefaultSocket}).Drain(ctx)
package control
