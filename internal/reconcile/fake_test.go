package reconcile

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/virtbgp/virtbgp/mapping"
)

var errDown = fmt.Errorf("fake libvirt: %w", ErrNotConnected)

// fakeHV is an in-memory Hypervisor for unit tests of the reconciler.
type fakeHV struct {
	mu      sync.Mutex
	domains map[string]Domain
	down    bool
	hints   chan Hint
	lists   int            // Domains calls
	lookups map[string]int // Domain calls per UUID
	gate    chan struct{}  // when non-nil, Domain/Domains wait on it
}

func newFakeHV(ds ...Domain) *fakeHV {
	h := &fakeHV{domains: map[string]Domain{}, hints: make(chan Hint, 4096), lookups: map[string]int{}}
	for _, d := range ds {
		h.domains[d.UUID] = d
	}
	return h
}

func (h *fakeHV) Hints() <-chan Hint { return h.hints }

func (h *fakeHV) wait() {
	h.mu.Lock()
	g := h.gate
	h.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (h *fakeHV) Domains(ctx context.Context) ([]Domain, error) {
	h.wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lists++
	if h.down {
		return nil, errDown
	}
	return slices.Collect(maps.Values(h.domains)), nil
}

func (h *fakeHV) Domain(ctx context.Context, uuid string) (Domain, bool, error) {
	h.wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lookups[uuid]++
	if h.down {
		return Domain{}, false, errDown
	}
	d, ok := h.domains[uuid]
	return d, ok, nil
}

// set changes a domain (or removes it with State<0) and, if hint, sends the
// hint like a libvirt event would.
func (h *fakeHV) set(d Domain, hint bool) {
	h.mu.Lock()
	h.domains[d.UUID] = d
	h.mu.Unlock()
	if hint {
		h.hints <- Hint{UUID: d.UUID, Name: d.Name, Event: "test"}
	}
}

func (h *fakeHV) remove(uuid string, hint bool) {
	h.mu.Lock()
	delete(h.domains, uuid)
	h.mu.Unlock()
	if hint {
		h.hints <- Hint{UUID: uuid, Event: "Undefined"}
	}
}

func (h *fakeHV) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

// fakeSpeaker records routes and operations.
type fakeSpeaker struct {
	mu     sync.Mutex
	routes map[netip.Prefix]mapping.Route
	ops    []string
	fail   int // fail the next n calls
}

func newFakeSpeaker() *fakeSpeaker {
	return &fakeSpeaker{routes: map[netip.Prefix]mapping.Route{}}
}

func (s *fakeSpeaker) Announce(ctx context.Context, r mapping.Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return fmt.Errorf("fake speaker: announce %s failed", r.Prefix)
	}
	s.routes[r.Prefix] = r.Clone()
	s.ops = append(s.ops, "announce "+r.String())
	return nil
}

func (s *fakeSpeaker) Withdraw(ctx context.Context, p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return fmt.Errorf("fake speaker: withdraw %s failed", p)
	}
	delete(s.routes, p)
	s.ops = append(s.ops, "withdraw "+p.String())
	return nil
}

func (s *fakeSpeaker) snapshot() (map[netip.Prefix]mapping.Route, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.routes), slices.Clone(s.ops)
}

func (s *fakeSpeaker) prefixes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range slices.SortedFunc(maps.Keys(s.routes), netip.Prefix.Compare) {
		out = append(out, p.String())
	}
	return out
}

func (s *fakeSpeaker) resetOps() {
	s.mu.Lock()
	s.ops = nil
	s.mu.Unlock()
}

func (s *fakeSpeaker) setFail(n int) {
	s.mu.Lock()
	s.fail = n
	s.mu.Unlock()
}
