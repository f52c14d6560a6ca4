package health

import (
	"testing"
	"time"
)

func TestMachine(t *testing.T) {
	P, F, C, M := Pass, Fail, CannotRun, InMaintenance
	tests := []struct {
		name       string
		rise, fall int
		seq        []Outcome
		want       []State // the state after each result
	}{
		{"rise from starting", 2, 3, []Outcome{P, P, P}, []State{Starting, Up, Up}},
		{"fall from starting", 2, 3, []Outcome{F, F, F}, []State{Starting, Starting, Down}},
		{"fall needs a run", 2, 3, []Outcome{P, P, F, F, P, F, F, F}, []State{Starting, Up, Up, Up, Up, Up, Up, Down}},
		{"rise needs a run", 2, 1, []Outcome{F, P, F, P, P}, []State{Down, Down, Down, Down, Up}},
		{"cannot run: at once, no flapping", 3, 3, []Outcome{P, P, P, C, C, C, P, P, P}, []State{Starting, Starting, Up, Unavailable, Unavailable, Unavailable, Unavailable, Unavailable, Up}},
		{"a failure after cannot-run is down at once", 1, 5, []Outcome{C, F}, []State{Unavailable, Down}},
		{"maintenance at once, rise after it", 2, 3, []Outcome{P, P, M, M, P, P}, []State{Starting, Up, Maintenance, Maintenance, Maintenance, Up}},
		{"rise 1 fall 1", 1, 1, []Outcome{P, F, P}, []State{Up, Down, Up}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Unix(1000, 0)
			m := NewMachine(tt.rise, tt.fall, t0)
			transitions := 0
			for i, o := range tt.seq {
				at := t0.Add(time.Duration(i+1) * time.Second)
				before := m.State
				from, changed := m.Observe(Result{Outcome: o, At: at, Detail: o.String()})
				if from != before || changed != (m.State != before) {
					t.Fatalf("step %d: Observe = %v, %v with %v -> %v", i, from, changed, before, m.State)
				}
				if m.State != tt.want[i] {
					t.Fatalf("step %d (%v): state %v, want %v", i, o, m.State, tt.want[i])
				}
				if changed {
					transitions++
					if !m.Since.Equal(at) || m.Reason != o.String() {
						t.Errorf("step %d: since %v reason %q, want %v %q", i, m.Since, m.Reason, at, o)
					}
				}
			}
			want := 0
			prev := Starting
			for _, s := range tt.want {
				if s != prev {
					want++
				}
				prev = s
			}
			if transitions != want {
				t.Errorf("%d transitions, want %d", transitions, want)
			}
		})
	}
}

func TestMachineHealthy(t *testing.T) {
	for _, tc := range []struct {
		s         State
		initialUp bool
		want      bool
	}{
		{Starting, false, false}, {Starting, true, true}, {Up, false, true}, {Down, true, false},
		{Unavailable, true, false}, {Maintenance, true, false},
	} {
		m := Machine{State: tc.s}
		if got := m.Healthy(tc.initialUp); got != tc.want {
			t.Errorf("%v (initial up %v): Healthy = %v, want %v", tc.s, tc.initialUp, got, tc.want)
		}
	}
}

func TestNextDue(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time {
		if n < 0 {
			return time.Time{}
		}
		return base.Add(time.Duration(n) * time.Millisecond)
	}
	for _, tc := range []struct {
		name           string
		due, start, at int // ms; due -1: the first run
		interval       time.Duration
		want           int // ms
	}{
		{"first run off the grid: a full interval, rounded up", -1, 1234, 1240, time.Second, 2300},
		{"cadence kept", 2300, 2303, 2310, time.Second, 3300},
		{"200 ms", 2300, 2305, 2306, 200 * time.Millisecond, 2500},
		{"not a multiple: rounded up", 2300, 2301, 2302, 250 * time.Millisecond, 2600},
		{"overdue: at the next grid point", 2300, 2301, 3450, time.Second, 3500},
	} {
		if got := nextDue(ms(tc.due), ms(tc.start), ms(tc.at), tc.interval); !got.Equal(ms(tc.want)) {
			t.Errorf("%s: nextDue = %v, want %v", tc.name, got.Sub(base), ms(tc.want).Sub(base))
		}
	}
}
