// Package manual is virtbgp's manual routes: the routes an operator or a
// program announces through the API rather than through a VM (a service IP
// of the hypervisor itself, a VM managed outside libvirt, an emergency
// blackhole). It validates an announce request by the mapping's rules
// (Validate), and keeps the routes in force in a file of the state
// directory, replaced atomically (Load, Save), so that they survive a
// restart. The daemon owns the set; the reconciler announces it.
package manual

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/virtbgp/virtbgp/mapping"
)

// Limits of a request.
const (
	// MaxNoteLen is the longest note, in bytes.
	MaxNoteLen = 256
	// MaxCommunities is the most communities, and the most large
	// communities, one route may carry.
	MaxCommunities = 64
	// MinTTL and MaxTTL bound a lease.
	MinTTL = time.Second
	MaxTTL = 7 * 24 * time.Hour
	// maxPrepend is the mapping's bound on as-path-prepend.
	maxPrepend = 16
)

// Request is an announce request, as the API receives it (JSON). Only
// Prefix is required; the attributes are those of a mapping entry.
type Request struct {
	// Prefix is an address (a host route) or a prefix in CIDR notation.
	Prefix string `json:"prefix"`
	// NextHop is "self" (the default) or an address.
	NextHop          string   `json:"next_hop,omitempty"`
	MED              *uint32  `json:"med,omitempty"`
	LocalPref        *uint32  `json:"local_pref,omitempty"`
	ASPathPrepend    *int     `json:"as_path_prepend,omitempty"`
	Communities      []string `json:"communities,omitempty"`
	LargeCommunities []string `json:"large_communities,omitempty"`
	// Note is free text for the operators (who, why, a ticket).
	Note string `json:"note,omitempty"`
	// TTL, a duration like "30s" or "10m", makes the route a lease: it is
	// withdrawn when the lease expires, unless announced again before.
	// Empty: the route stays until withdrawn.
	TTL string `json:"ttl,omitempty"`
}

// Route is a manual route in force, as it is persisted and shown.
type Route struct {
	Prefix           netip.Prefix `json:"prefix"`
	NextHop          string       `json:"next_hop"`
	MED              *uint32      `json:"med,omitempty"`
	LocalPref        *uint32      `json:"local_pref,omitempty"`
	ASPathPrepend    uint8        `json:"as_path_prepend,omitempty"`
	Communities      []string     `json:"communities,omitempty"`
	LargeCommunities []string     `json:"large_communities,omitempty"`
	Note             string       `json:"note,omitempty"`
	// TTL is the lease's length ("" without one); Expires is when the
	// lease ends unless renewed.
	TTL     string    `json:"ttl,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// CreatedBy is who announced the route first: "uid 0" on the control
	// socket, "token NAME" or "cert NAME" over TCP. Created is when;
	// UpdatedBy and Updated are the last announce (a renewal).
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	Updated   time.Time `json:"updated,omitzero"`
}

// FieldError is a problem of one field of a request.
type FieldError struct {
	Field string // the JSON name of the field
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks a request by the mapping's rules (the prefix's host bits
// and reserved addresses, the attributes' ranges) and against what the
// operator allows manual routes (api.allowed-prefixes,
// api.min-prefix-length, api.allowed-next-hops), and returns the route to
// announce and the lease's length (0: none). The error is a *FieldError.
func Validate(req *Request, allow *mapping.Allow) (mapping.Route, time.Duration, error) {
	r, ttl, err := parse(req)
	if err != nil {
		return r, 0, err
	}
	if _, refused := allow.Filter("", []mapping.Route{r}); len(refused) > 0 {
		field := "prefix"
		if strings.HasPrefix(refused[0].Reason, "next hop") {
			field = "next_hop"
		}
		return r, 0, fieldErr(field, "%s: %s (api.allowed-prefixes, api.min-prefix-length, api.allowed-next-hops)",
			refused[0].Prefix, strings.ReplaceAll(refused[0].Reason, "this source", "a manual route"))
	}
	return r, ttl, nil
}

// parse is Validate without the allowed pools.
func parse(req *Request) (mapping.Route, time.Duration, error) {
	var r mapping.Route
	if req.Prefix == "" {
		return r, 0, fieldErr("prefix", "required")
	}
	p, err := mapping.ParsePrefix(req.Prefix)
	if err != nil {
		return r, 0, fieldErr("prefix", "%v", err)
	}
	r.Prefix = p
	switch req.NextHop {
	case "", "self":
	default:
		nh, err := mapping.ParseNextHop(req.NextHop)
		if err != nil {
			return r, 0, fieldErr("next_hop", "%v", err)
		}
		if nh.Is4() != p.Addr().Is4() {
			return r, 0, fieldErr("next_hop", "%s is not of the prefix's family", nh)
		}
		r.NextHop = nh
	}
	if req.MED != nil {
		v := *req.MED
		r.MED = &v
	}
	if req.LocalPref != nil {
		v := *req.LocalPref
		r.LocalPref = &v
	}
	if req.ASPathPrepend != nil {
		if n := *req.ASPathPrepend; n < 0 || n > maxPrepend {
			return r, 0, fieldErr("as_path_prepend", "want an integer from 0 to %d, got %d", maxPrepend, n)
		}
		r.ASPathPrepend = uint8(*req.ASPathPrepend)
	}
	if len(req.Communities) > MaxCommunities {
		return r, 0, fieldErr("communities", "at most %d, got %d", MaxCommunities, len(req.Communities))
	}
	for i, s := range req.Communities {
		c, err := mapping.ParseCommunity(s)
		if err != nil {
			return r, 0, fieldErr(fmt.Sprintf("communities[%d]", i), "%v", err)
		}
		r.Communities = append(r.Communities, c)
	}
	if len(req.LargeCommunities) > MaxCommunities {
		return r, 0, fieldErr("large_communities", "at most %d, got %d", MaxCommunities, len(req.LargeCommunities))
	}
	for i, s := range req.LargeCommunities {
		c, err := mapping.ParseLargeCommunity(s)
		if err != nil {
			return r, 0, fieldErr(fmt.Sprintf("large_communities[%d]", i), "%v", err)
		}
		r.LargeCommunities = append(r.LargeCommunities, c)
	}
	r.Normalize()
	if err := checkNote(req.Note); err != nil {
		return r, 0, err
	}
	ttl, err := ParseTTL(req.TTL)
	return r, ttl, err
}

// ParseTTL parses a lease's length ("30s", "10m"; "" is none, 0) within
// MinTTL and MaxTTL. The error is a *FieldError of the field "ttl".
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	ttl, err := time.ParseDuration(s)
	if err != nil {
		return 0, fieldErr("ttl", "want a duration like \"30s\" or \"10m\", got %q", s)
	}
	if ttl < MinTTL || ttl > MaxTTL {
		return 0, fieldErr("ttl", "want from %s to %s, got %s", MinTTL, MaxTTL, ttl)
	}
	return ttl, nil
}

// CheckNote checks an operator's note: at most MaxNoteLen bytes of
// printable characters. The error is a *FieldError of the field "note".
func CheckNote(s string) error {
	return checkNote(s)
}

func checkNote(s string) error {
	if len(s) > MaxNoteLen {
		return fieldErr("note", "at most %d bytes, got %d", MaxNoteLen, len(s))
	}
	for _, c := range s {
		if c == unicode.ReplacementChar || !unicode.IsPrint(c) {
			return fieldErr("note", "only printable characters, got %q", c)
		}
	}
	return nil
}

// New is the record of a route announced by who at now from a validated
// request; prev is the route in force for the prefix, if any (a renewal
// keeps its creator).
func New(r mapping.Route, ttl time.Duration, note, who string, now time.Time, prev *Route) Route {
	out := Route{
		Prefix:        r.Prefix,
		NextHop:       "self",
		MED:           r.MED,
		LocalPref:     r.LocalPref,
		ASPathPrepend: r.ASPathPrepend,
		Note:          note,
		CreatedBy:     who,
		Created:       now.UTC(),
	}
	if r.NextHop.IsValid() {
		out.NextHop = r.NextHop.String()
	}
	for _, c := range r.Communities {
		out.Communities = append(out.Communities, mapping.FormatCommunity(c))
	}
	for _, c := range r.LargeCommunities {
		out.LargeCommunities = append(out.LargeCommunities, c.String())
	}
	if ttl > 0 {
		out.TTL = ttl.String()
		out.Expires = now.Add(ttl).UTC()
	}
	if prev != nil {
		out.CreatedBy, out.Created = prev.CreatedBy, prev.Created
		out.UpdatedBy, out.Updated = who, now.UTC()
	}
	return out
}

// BGP is the route to announce, checked again by the mapping's rules (a
// record read from the state file is not trusted). The pools are the
// reconciler's to apply: they may have changed since the announce.
func (r *Route) BGP() (mapping.Route, error) {
	req := Request{Prefix: r.Prefix.String(), NextHop: r.NextHop, MED: r.MED, LocalPref: r.LocalPref,
		Communities: r.Communities, LargeCommunities: r.LargeCommunities, Note: r.Note}
	n := int(r.ASPathPrepend)
	req.ASPathPrepend = &n
	out, _, err := parse(&req)
	if err == nil && out.Prefix != r.Prefix {
		err = fieldErr("prefix", "%s is not in canonical form", r.Prefix)
	}
	return out, err
}

// ErrNotFound is returned by a withdraw of a prefix without a manual route.
var ErrNotFound = errors.New("no manual route for this prefix")
