package fileerr_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/virtbgp/virtbgp/fileerr"
)

func TestError(t *testing.T) {
	for _, tc := range []struct {
		e    fileerr.Error
		want string
	}{
		{fileerr.Error{File: "m.yaml", Line: 3, Msg: "bad"}, "m.yaml:3: bad"},
		{fileerr.Error{File: "m.yaml", Msg: "cannot read: no such file"}, "m.yaml: cannot read: no such file"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%#v.Error() = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestErrorList(t *testing.T) {
	l := fileerr.ErrorList{
		{File: "b.yaml", Line: 1, Msg: "b1"},
		{File: "a.yaml", Line: 7, Msg: "a7 first"},
		{File: "a.yaml", Line: 2, Msg: "a2"},
		{File: "a.yaml", Line: 7, Msg: "a7 second"},
	}
	l.Sort()
	want := "a.yaml:2: a2\na.yaml:7: a7 first\na.yaml:7: a7 second\nb.yaml:1: b1"
	if got := l.Error(); got != want {
		t.Errorf("sorted list renders as\n%s\nwant\n%s", got, want)
	}
	wrapped := fmt.Errorf("load: %w", l)
	if got := fileerr.Errors(wrapped); !reflect.DeepEqual(got, l) {
		t.Errorf("Errors(wrapped list) = %v", got)
	}
	one := fileerr.Error{File: "c.yaml", Line: 1, Msg: "c"}
	if got := fileerr.Errors(fmt.Errorf("x: %w", one)); !reflect.DeepEqual(got, fileerr.ErrorList{one}) {
		t.Errorf("Errors(wrapped error) = %v", got)
	}
	if got := fileerr.Errors(fmt.Errorf("plain")); got != nil {
		t.Errorf("Errors(plain error) = %v, want nil", got)
	}
}
