// Package maintenance is the operator's maintenance switch of the API and
// the CLI (`virtbgp maintenance on|off|list`): a domain, or one route of
// it, taken out of service whether or not its mapping entry has health
// checks. It validates a request (ParseRequest), keeps the entries in
// force in a file of the state directory, replaced atomically through an
// os.Root (Load, Save), so that they survive a restart, and turns them
// into the reconciler's input (ForReconciler). The daemon's main loop owns
// the entries; Resolve applies them.
package maintenance

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/mapping"
)

// Request is the optional body of PUT /v1/maintenance/{domain}.
type Request struct {
	// IP, an address or a prefix of one of the domain's routes, puts that
	// route alone in maintenance; empty: every route of the domain.
	IP string `json:"ip,omitempty"`
	// Note is free text for the operators (who, why, a ticket).
	Note string `json:"note,omitempty"`
	// TTL, a duration like "30m", ends the maintenance by itself after
	// that long, unless set again before; empty: until switched off.
	TTL string `json:"ttl,omitempty"`
}

// Entry is one maintenance in force, as it is persisted and shown.
type Entry struct {
	// Domain is the domain's name when the maintenance was set; UUID is
	// the domain it applies to (a rename keeps it).
	Domain string `json:"domain"`
	UUID   string `json:"uuid"`
	// Prefix is the one route in maintenance; absent: every route of the
	// domain.
	Prefix netip.Prefix `json:"prefix,omitzero"`
	Note   string       `json:"note,omitempty"`
	// TTL is the length asked for ("" without one); Expires is when the
	// maintenance ends by itself unless set again.
	TTL     string    `json:"ttl,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// SetBy is who put it in maintenance first ("uid 0", "token NAME",
	// "cert NAME"), Since when; UpdatedBy and Updated are the last set.
	SetBy     string    `json:"set_by"`
	Since     time.Time `json:"since"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	Updated   time.Time `json:"updated,omitzero"`
}

// Key is what an entry applies to: a domain's UUID and a prefix, zero for
// the whole domain.
type Key = reconcile.HealthKey

// Key returns the entry's key.
func (e *Entry) Key() Key { return Key{UUID: e.UUID, Prefix: e.Prefix} }

// ParseRequest checks a request's fields and returns the route it names
// (zero: the whole domain) and the length of its TTL (0: none). Whether
// the route is one of the domain's is the caller's to check. The error is
// a *manual.FieldError.
func ParseRequest(req *Request) (netip.Prefix, time.Duration, error) {
	var p netip.Prefix
	if req.IP != "" {
		var err error
		p, err = mapping.ParsePrefix(req.IP)
		if err != nil {
			return netip.Prefix{}, 0, &manual.FieldError{Field: "ip", Msg: err.Error()}
		}
	}
	if err := manual.CheckNote(req.Note); err != nil {
		return netip.Prefix{}, 0, err
	}
	ttl, err := manual.ParseTTL(req.TTL)
	if err != nil {
		return netip.Prefix{}, 0, err
	}
	return p, ttl, nil
}

// New is the entry of a maintenance set by who at now on the domain name
// (uuid), or on its route p; prev is the entry in force for the same key,
// if any (setting it again keeps who set it first and since when).
func New(name, uuid string, p netip.Prefix, ttl time.Duration, note, who string, now time.Time, prev *Entry) Entry {
	e := Entry{Domain: name, UUID: uuid, Prefix: p, Note: note, SetBy: who, Since: now.UTC()}
	if ttl > 0 {
		e.TTL = ttl.String()
		e.Expires = now.Add(ttl).UTC()
	}
	if prev != nil {
		e.SetBy, e.Since = prev.SetBy, prev.Since
		e.UpdatedBy, e.Updated = who, now.UTC()
	}
	return e
}

// Reason is what logs and status say of a route in maintenance.
func (e *Entry) Reason() string {
	return "maintenance by " + e.SetBy
}

// ForReconciler is the reconciler's input for the entries.
func ForReconciler(entries map[Key]Entry) reconcile.Maintenance {
	out := make(reconcile.Maintenance, len(entries))
	for k, e := range entries {
		out[k] = e.Reason()
	}
	return out
}

// Sorted returns the entries sorted by domain name, UUID, then prefix (the
// whole domain first).
func Sorted(entries map[Key]Entry) []Entry {
	out := make([]Entry, 0, len(entries))
	for _, e := range entries {
		out = append(out, e)
	}
	slices.SortFunc(out, Compare)
	return out
}

// Compare orders entries by domain name, UUID, then prefix (the whole
// domain first).
func Compare(a, b Entry) int {
	return cmp.Or(cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.UUID, b.UUID), a.Prefix.Compare(b.Prefix))
}

// check is the validation of an entry read back from the state file.
func (e *Entry) check() error {
	switch {
	case e.UUID == "":
		return fmt.Errorf("uuid: required")
	case e.Prefix.IsValid() && e.Prefix != e.Prefix.Masked():
		return fmt.Errorf("prefix: %s is not in canonical form", e.Prefix)
	case e.SetBy == "":
		return fmt.Errorf("set_by: required")
	}
	if err := manual.CheckNote(e.Note); err != nil {
		return err
	}
	if _, err := manual.ParseTTL(e.TTL); err != nil {
		return err
	}
	if (e.TTL == "") != e.Expires.IsZero() {
		return fmt.Errorf("ttl and expires: both or neither")
	}
	return nil
}
