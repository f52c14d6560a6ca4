// Package control is virtbgp's HTTP API (docs/api/openapi.yaml), served
// with net/http on the control unix socket and, optionally, on TCP: the
// channel behind `virtbgp status`, `drain`, `undrain`, `reload`,
// `announce`, `withdraw` and `routes`, and behind curl.
//
// On the unix socket only root may use it. Two locks guard it: the socket
// file is mode 0600 (in a directory created 0700 when the server creates
// it), and the server asks the kernel who is at the other end of every
// connection (SO_PEERCRED) and serves only uid 0. The second check is the
// authority: it holds even if the file's mode or its directory's is
// loosened, and a root user inside an unprivileged user namespace is seen
// as its unprivileged host uid. Refused clients get 403 with a JSON error,
// and are logged with their uid, gid and pid. With Server.ReadGroup, the
// members of that group (by SO_PEERCRED's gid or the process's
// supplementary groups) may use the read calls. The Client checks the other
// way too: it talks only to a socket served by root (or its own uid).
//
// On TCP (Server.ListenTCP) every request needs a bearer token of
// Server.Tokens (compared in constant time, never logged; read-only or
// read-write) or, with Server.TLS and its ClientCAs, a verified client
// certificate: 401 without, 403 for a read-only token writing.
//
// # Protocol
//
// HTTP/1.1, one request per connection from the Client (curl may keep the
// connection). Success is 200 with the result as JSON; every failure is a
// 4xx or 5xx with {"error": "...", "field": "..."}. Request bodies are
// JSON objects of at most [DefaultMaxRequestBytes], unknown fields are
// errors; a request must arrive within [DefaultIOTimeout]; a Handler gets
// [DefaultOpTimeout]; write calls are limited to [DefaultWriteRate] per
// second. (The Server fields override these.)
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
