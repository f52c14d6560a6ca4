// Package fileerr is the error that virtbgp's strict file loaders (the
// mapping package and the daemon's config) return: every problem found, each
// at one line of one file, so that a user can fix them all in one pass.
package fileerr

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Error is one problem at one line of one file. Its text is
// "file:line: problem", or "file: problem" when no line applies (Line is 0),
// as for a file that cannot be read.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ErrorList is every problem found, sorted by file and line. The loaders
// return one, as an error, only when it is not empty. Its text is one
// problem per line.
type ErrorList []Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Sort orders the list by file, then line; problems on one line keep the
// order they were found in.
func (l ErrorList) Sort() {
	slices.SortStableFunc(l, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// Errors returns the individual problems inside err (an ErrorList, an
// Error, or an error wrapping either), or nil.
func Errors(err error) ErrorList {
	var l ErrorList
	if errors.As(err, &l) {
		return l
	}
	var e Error
	if errors.As(err, &e) {
		return ErrorList{e}
	}
	return nil
}

// Clip returns s cut to at most max bytes (at a UTF-8 boundary), marked
// with how much was cut, for quoting input in messages: a 100 MB value
// must not become a 100 MB log line or status report.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d more bytes)", s[:cut], len(s)-cut)
}
