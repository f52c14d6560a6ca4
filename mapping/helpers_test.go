package mapping_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// doc joins lines into a file, one line each, so that tests can count
// lines: doc("a", "b") has "a" on line 1 and "b" on line 2.
func doc(lines ...string) []byte {
	return []byte(strings.Join(lines, "\n") + "\n")
}

// mustParse parses src as m.yaml and fails the test on any problem.
func mustParse(t *testing.T, src []byte) *mapping.Mapping {
	t.Helper()
	m, err := mapping.Parse("m.yaml", src)
	if err != nil {
		t.Fatalf("Parse: unexpected problems:\n%v", err)
	}
	return m
}

// problems returns the lines of an error that must be an ErrorList.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want problems")
	}
	var list mapping.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not a mapping.ErrorList", err, err)
	}
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.Error()
	}
	if got := strings.Join(out, "\n"); got != err.Error() {
		t.Errorf("Error() = %q, want the problems one per line %q", err.Error(), got)
	}
	return out
}

// routeStrings renders every entry's routes: key -> Route.String of each.
func routeStrings(m *mapping.Mapping) map[string][]string {
	out := map[string][]string{}
	for _, v := range m.VMs() {
		rs := []string{}
		for _, r := range v.Routes {
			rs = append(rs, r.String())
		}
		out[v.Key] = rs
	}
	return out
}

// diffLines reports the lines missing from got and the unexpected ones.
func diffLines(t *testing.T, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	var b strings.Builder
	for _, w := range want {
		if !slices.Contains(got, w) {
			b.WriteString("\n  missing:    " + w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			b.WriteString("\n  unexpected: " + g)
		}
	}
	if b.Len() == 0 {
		b.WriteString("\n  (same lines, other order)")
	}
	t.Errorf("got:\n  %s\nwant:\n  %s%s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), b.String())
}
