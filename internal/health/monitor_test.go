package health

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// fakeAgent answers guest-ping as told, per domain.
type fakeAgent struct {
	mu    sync.Mutex
	err   map[string]error
	pings map[string]int
}

func (a *fakeAgent) AgentPing(_ context.Context, uuid string, _ time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pings[uuid]++
	return a.err[uuid]
}

func (a *fakeAgent) set(uuid string, err error) {
	a.mu.Lock()
	a.err[uuid] = err
	a.mu.Unlock()
}

type transitions struct {
	mu  sync.Mutex
	got []string
}

func (o *transitions) Transition(k mapping.CheckKind, from, to State) {
	o.mu.Lock()
	o.got = append(o.got, fmt.Sprintf("%s %s->%s", k, from, to))
	o.mu.Unlock()
}

const monMapping = `version: 1
vms:
  web:
    health:
      checks: [{type: agent, interval: 1s, timeout: 500ms, rise: 2, fall: 3}]
    ips: [192.0.2.1, 192.0.2.2]
  db:
    health:
      initial: up
      checks: [{type: agent, interval: 1s, timeout: 500ms, rise: 2, fall: 3}]
    ips: [192.0.2.3]
`

const uuidWeb, uuidDB = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"

var pWeb1, pWeb2, pDB = netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32"), netip.MustParsePrefix("192.0.2.3/32")

// TestMonitorRiseFall runs the agent checks of two domains on a fake
// clock: a starting check is failing (initial down) until rise passes,
// fails after fall failures, and each change is one log line, one
// transition and one hint; a check the agent cannot run is unavailable.
func TestMonitorRiseFall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m0, err := mapping.Parse("m.yaml", []byte(monMapping))
		if err != nil {
			t.Fatal(err)
		}
		agent := &fakeAgent{err: map[string]error{}, pings: map[string]int{}}
		agent.set(uuidDB, fmt.Errorf("%w: no guest agent channel", ErrCannotRun))
		log, logs := testutil.Logger()
		obs := &transitions{}
		mon := New(Options{Log: log, Agent: agent, Observer: obs})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error)
		go func() { done <- mon.Run(ctx) }()

		start := time.Now()
		mon.Watch([]reconcile.Domain{
			{Name: "web", UUID: uuidWeb, State: reconcile.StateRunning, Reason: "booted"},
			{Name: "db", UUID: uuidDB, State: reconcile.StateRunning, Reason: "booted"},
		}, m0, nil)
		synctest.Wait()
		// t=0: the first runs. web: one pass of two; db: cannot run.
		h := mon.Health()
		if rh := h[reconcile.HealthKey{UUID: uuidWeb, Prefix: pWeb1}]; !rh.Failing {
			t.Fatalf("web at start: %+v, want failing (starting, initial down)", rh)
		}
		if rh := h[reconcile.HealthKey{UUID: uuidDB, Prefix: pDB}]; !rh.Failing {
			t.Fatalf("db whose agent cannot run: %+v, want failing", rh)
		}
		drain(mon.Changed())

		// t=1s: the second pass: web up, both IPs in one change.
		time.Sleep(time.Second)
		synctest.Wait()
		if time.Since(start) != time.Second {
			t.Fatalf("clock at %v", time.Since(start))
		}
		h = mon.Health()
		for _, p := range []netip.Prefix{pWeb1, pWeb2} {
			if rh := h[reconcile.HealthKey{UUID: uuidWeb, Prefix: p}]; rh.Failing {
				t.Fatalf("web %s after rise: %+v, want up", p, rh)
			}
		}
		if !drain(mon.Changed()) {
			t.Fatal("no hint after web rose")
		}

		// The agent stops answering at t=1.5s: failures at 2s, 3s, 4s;
		// down at 4s, not before.
		time.Sleep(500 * time.Millisecond)
		agent.set(uuidWeb, errors.New("guest agent is not responding"))
		time.Sleep(2 * time.Second) // t=3.5s
		synctest.Wait()
		if rh := mon.Health()[reconcile.HealthKey{UUID: uuidWeb, Prefix: pWeb1}]; rh.Failing {
			t.Fatalf("web after 2 failures: %+v, want still up (fall 3)", rh)
		}
		if drain(mon.Changed()) {
			t.Fatal("a hint before fall failures")
		}
		time.Sleep(500 * time.Millisecond) // t=4s
		synctest.Wait()
		rh := mon.Health()[reconcile.HealthKey{UUID: uuidWeb, Prefix: pWeb1}]
		if !rh.Failing || rh.Reason != "check agent down: guest agent is not responding" {
			t.Fatalf("web after 3 failures: %+v, want failing", rh)
		}
		if !drain(mon.Changed()) {
			t.Fatal("no hint after web fell")
		}

		st, err := mon.Status(ctx)
		if err != nil || len(st) != 2 {
			t.Fatalf("Status = %+v, %v", st, err)
		}
		if s := st[1]; s.Domain != "web" || s.State != "down" || s.Since.Sub(start) != 4*time.Second ||
			s.Last == nil || s.Last.Outcome != "fail" || len(s.Routes) != 2 {
			t.Errorf("web's status %+v", s)
		}
		if s := st[0]; s.Domain != "db" || s.State != "unavailable" || s.Reason != "check cannot run: no guest agent channel" {
			t.Errorf("db's status %+v", s)
		}

		// The domain stops: its checks stop, its routes leave Health.
		mon.Watch([]reconcile.Domain{{Name: "web", UUID: uuidWeb, State: reconcile.StateOff}}, m0, nil)
		synctest.Wait()
		if h := mon.Health(); len(h) != 0 {
			t.Errorf("Health after the domains stopped: %v", h)
		}
		agent.mu.Lock()
		pings := agent.pings[uuidWeb]
		agent.mu.Unlock()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		agent.mu.Lock()
		defer agent.mu.Unlock()
		if agent.pings[uuidWeb] != pings {
			t.Errorf("pings went on after the domain stopped: %d -> %d", pings, agent.pings[uuidWeb])
		}

		obs.mu.Lock()
		wantTr := []string{"agent starting->unavailable", "agent starting->up", "agent up->down"}
		if fmt.Sprint(sorted(obs.got)) != fmt.Sprint(wantTr) {
			t.Errorf("transitions %v, want %v", obs.got, wantTr)
		}
		obs.mu.Unlock()
		if n := strings.Count(logs.String(), `msg="health check changed"`); n != 3 {
			t.Errorf("%d log lines of transitions, want 3:\n%s", n, logs)
		}
		cancel()
		<-done
	})
}

// TestMonitorMigratedStartsUp: a domain that arrived by live migration
// starts up, so that its route does not go through "starting".
func TestMonitorMigratedStartsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m0, _ := mapping.Parse("m.yaml", []byte(monMapping))
		agent := &fakeAgent{err: map[string]error{}, pings: map[string]int{}}
		mon := New(Options{Agent: agent})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go mon.Run(ctx)
		mon.Watch([]reconcile.Domain{{Name: "web", UUID: uuidWeb, State: reconcile.StatePaused, Migration: reconcile.MigrationIncoming}}, m0, nil)
		synctest.Wait()
		if rh, ok := mon.Health()[reconcile.HealthKey{UUID: uuidWeb, Prefix: pWeb1}]; !ok || rh.Failing {
			t.Errorf("migrated-in web: %+v %v, want up", rh, ok)
		}
	})
}

// TestMonitorAgentEventRunsNow: the agent lifecycle event runs the agent
// check at once instead of at the next interval.
func TestMonitorAgentEventRunsNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m0, _ := mapping.Parse("m.yaml", []byte(monMapping))
		agent := &fakeAgent{err: map[string]error{}, pings: map[string]int{}}
		mon := New(Options{Agent: agent})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go mon.Run(ctx)
		mon.Watch([]reconcile.Domain{{Name: "web", UUID: uuidWeb, State: reconcile.StateRunning}}, m0, nil)
		synctest.Wait()
		time.Sleep(100 * time.Millisecond)
		mon.AgentEvent(uuidWeb)
		synctest.Wait()
		agent.mu.Lock()
		n := agent.pings[uuidWeb]
		agent.mu.Unlock()
		if n != 2 {
			t.Errorf("%d pings 100ms after the start and an agent event, want 2", n)
		}
	})
}

func drain(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestMonitorEditKeepsState: a mapping reload that changes a running
// check (its interval) keeps the check's state: the route does not go
// back to starting.
func TestMonitorEditKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m0, _ := mapping.Parse("m.yaml", []byte(monMapping))
		m1, err := mapping.Parse("m.yaml", []byte(strings.ReplaceAll(monMapping, "interval: 1s", "interval: 2s")))
		if err != nil {
			t.Fatal(err)
		}
		agent := &fakeAgent{err: map[string]error{}, pings: map[string]int{}}
		mon := New(Options{Agent: agent})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go mon.Run(ctx)
		web := []reconcile.Domain{{Name: "web", UUID: uuidWeb, State: reconcile.StateRunning}}
		mon.Watch(web, m0, nil)
		time.Sleep(1500 * time.Millisecond) // two passes: up
		synctest.Wait()
		key := reconcile.HealthKey{UUID: uuidWeb, Prefix: pWeb1}
		if rh := mon.Health()[key]; rh.Failing {
			t.Fatalf("web before the edit: %+v", rh)
		}
		mon.Watch(web, m1, nil)
		synctest.Wait()
		if rh, ok := mon.Health()[key]; !ok || rh.Failing {
			t.Fatalf("web after its check's interval changed: %+v %v, want up", rh, ok)
		}
		st, _ := mon.Status(ctx)
		if len(st) != 1 || st[0].State != "up" {
			t.Errorf("status after the edit: %+v", st)
		}
	})
}

// TestMonitorPausedKeepsChecks: a domain paused (the source of a
// migration at its switch-over) keeps its checks and their state.
func TestMonitorPausedKeepsChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m0, _ := mapping.Parse("m.yaml", []byte(monMapping))
		agent := &fakeAgent{err: map[string]error{}, pings: map[string]int{}}
		mon := New(Options{Agent: agent})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go mon.Run(ctx)
		mon.Watch([]reconcile.Domain{{Name: "web", UUID: uuidWeb, State: reconcile.StateRunning}}, m0, nil)
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		mon.Watch([]reconcile.Domain{{Name: "web", UUID: uuidWeb, State: reconcile.StatePaused, Migration: reconcile.MigrationOutgoing}}, m0, nil)
		synctest.Wait()
		if rh, ok := mon.Health()[reconcile.HealthKey{UUID: uuidWeb, Prefix: pWeb1}]; !ok || rh.Failing {
			t.Errorf("web paused for the switch-over: %+v %v, want up", rh, ok)
		}
	})
}

// TestMonitorMetadataChecks runs the checks of a domain's virtbgp
// element on a fake clock: those of the routes Resolve may announce
// (reconcile.Checked), with the trust rules in force; none of a route
// outside the allowed pools, nor of one whose check the rules refuse;
// none at all when the source is allowed nothing.
func TestMonitorMetadataChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		md, err := mapping.ParseMetadata("meta", []byte(`<vm><health><check type="agent" interval="1s" rise="1"/></health>`+
			`<ip prefix="198.51.100.1"/><ip prefix="203.0.113.1"/><ip prefix="198.51.100.2"><health><check type="exec" command="/bin/true"/></health></ip></vm>`))
		if err != nil {
			t.Fatal(err)
		}
		d := reconcile.Domain{Name: "meta", UUID: uuidWeb, State: reconcile.StateRunning, Reason: "booted",
			Claims: &reconcile.Claims{Metadata: &reconcile.Claim{Routes: md.Routes, Health: md.Health}}}
		empty, err := mapping.Parse("m.yaml", []byte("version: 1\nvms: {}\n"))
		if err != nil {
			t.Fatal(err)
		}
		trust := &reconcile.Trust{Metadata: mapping.Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}
		agent := &fakeAgent{err: map[string]error{}, pings: map[string]int{}}
		mon := New(Options{Agent: agent})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go mon.Run(ctx)

		checks := func() []string {
			t.Helper()
			st, err := mon.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, c := range st {
				out = append(out, c.IP.String()+" "+c.Check+" "+c.State)
			}
			return out
		}
		mon.Watch([]reconcile.Domain{d}, empty, trust)
		synctest.Wait()
		if got := checks(); strings.Join(got, ",") != "198.51.100.1 agent up" {
			t.Errorf("checks %q, want the agent check of 198.51.100.1 only", got)
		}
		if rh, ok := mon.Health()[reconcile.HealthKey{UUID: uuidWeb, Prefix: netip.MustParsePrefix("198.51.100.1/32")}]; !ok || rh.Failing {
			t.Errorf("198.51.100.1: %+v (known %v), want up", rh, ok)
		}
		mon.Watch([]reconcile.Domain{d}, empty, nil)
		synctest.Wait()
		if got := checks(); len(got) != 0 {
			t.Errorf("with metadata allowed nothing: checks %q, want none", got)
		}
	})
}
