package mapping

import (
	"slices"
	"strconv"
	"strings"
)

// Changes is what changed from one mapping to the next (see Diff).
type Changes struct {
	// Added, Removed and Changed are entry keys, sorted: entries only in
	// the new mapping, only in the old one, and in both with other routes,
	// attributes or uuid pin. An entry that only moved to another file or
	// line is not changed.
	Added, Removed, Changed []string
	// Routes counts the routes added, removed and changed, over all
	// entries (the routes of an added entry are added).
	Routes RouteChanges
}

// RouteChanges counts changed routes. A route is identified by its entry
// and prefix: changed means other attributes.
type RouteChanges struct {
	Added, Removed, Changed int
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Changed) == 0
}

// String summarizes the changes in one line, for logs:
// "2 VMs added, 1 changed, 0 removed (5 routes added, 1 changed, 0 removed)".
func (c Changes) String() string {
	var b strings.Builder
	count := func(n int, one, many string) {
		b.WriteString(strconv.Itoa(n))
		if n == 1 {
			b.WriteString(one)
		} else {
			b.WriteString(many)
		}
	}
	count(len(c.Added), " VM added, ", " VMs added, ")
	count(len(c.Changed), " changed, ", " changed, ")
	count(len(c.Removed), " removed (", " removed (")
	count(c.Routes.Added, " route added, ", " routes added, ")
	count(c.Routes.Changed, " changed, ", " changed, ")
	count(c.Routes.Removed, " removed)", " removed)")
	return b.String()
}

// Diff compares two mappings entry by entry. old may be nil (everything is
// added), and so may new (everything is removed). It costs one pass over both
// (their entries are sorted by key).
func Diff(old, new *Mapping) Changes {
	var c Changes
	var a, b []VM
	if old != nil {
		a = old.vms
	}
	if new != nil {
		b = new.vms
	}
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].Key < b[0].Key):
			c.Removed = append(c.Removed, a[0].Key)
			c.Routes.Removed += len(a[0].Routes)
			a = a[1:]
		case len(a) == 0 || b[0].Key < a[0].Key:
			c.Added = append(c.Added, b[0].Key)
			c.Routes.Added += len(b[0].Routes)
			b = b[1:]
		default:
			if diffRoutes(a[0].Routes, b[0].Routes, &c.Routes) || a[0].UUID != b[0].UUID {
				c.Changed = append(c.Changed, b[0].Key)
			}
			a, b = a[1:], b[1:]
		}
	}
	return c
}

// diffRoutes counts the differences between two lists of routes sorted by
// prefix into n, and reports whether there is any.
func diffRoutes(a, b []Route, n *RouteChanges) bool {
	if slices.EqualFunc(a, b, Route.Equal) {
		return false
	}
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].Prefix.Compare(b[0].Prefix) < 0):
			n.Removed++
			a = a[1:]
		case len(a) == 0 || b[0].Prefix.Compare(a[0].Prefix) < 0:
			n.Added++
			b = b[1:]
		default:
			if !a[0].Equal(b[0]) {
				n.Changed++
			}
			a, b = a[1:], b[1:]
		}
	}
	return true
}
