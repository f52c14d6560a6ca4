package reconcile

import (
	"encoding/json"
	"strings"
	"testing"
)

// The drain states' text is the one the daemon persists in drain.json and
// status shows: it must not change.
func TestDrainText(t *testing.T) {
	for d, want := range map[Drain]string{DrainNone: "none", DrainDraining: "draining", DrainDrained: "drained"} {
		b, err := d.MarshalText()
		if err != nil || string(b) != want || d.String() != want {
			t.Errorf("%d: MarshalText %q, %v; String %q; want %q", int(d), b, err, d.String(), want)
		}
		var back Drain
		if err := back.UnmarshalText([]byte(want)); err != nil || back != d {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", want, back, err, d)
		}
	}
	var d Drain
	for _, bad := range []string{"", "None", "shutdown", "withdrawn"} {
		if err := d.UnmarshalText([]byte(bad)); err == nil || !strings.Contains(err.Error(), "want none, draining or drained") {
			t.Errorf("UnmarshalText(%q) = %v, want an error naming the states", bad, err)
		}
	}
	if _, err := Drain(7).MarshalText(); err == nil {
		t.Error("MarshalText of an invalid state succeeded")
	}
	if s := Drain(7).String(); s != "Drain(7)" {
		t.Errorf("String of an invalid state = %q", s)
	}
	// In JSON, as a field.
	b, err := json.Marshal(struct{ State Drain }{DrainDraining})
	if err != nil || string(b) != `{"State":"draining"}` {
		t.Errorf("json = %s, %v", b, err)
	}
}
