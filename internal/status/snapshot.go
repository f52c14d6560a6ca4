package status

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// snapshots shares the Source's reports between the handlers: one
// question to the daemon's main loop at a time, whatever the number of
// clients, so that many parallel /status clients cannot keep the loop
// busy enough to fail /healthz (issue 17, finding 7).
type snapshots struct {
	src  Source
	base context.Context // ends at Shutdown; nil: never

	mu     sync.Mutex
	last   *snapshot     // the last answer, nil before the first
	flight chan struct{} // closed when the question in flight is answered; nil if none
	next   *snapshot     // the answer of the question in flight, once flight is closed
}

// snapshot is one answer of the Source, and its JSON encoding, made once
// on demand and shared.
type snapshot struct {
	r      Report
	err    error
	asked  time.Time // when the question was asked
	once   sync.Once
	json   []byte
	encErr error
}

// encoded is the report as indented JSON with a final newline.
func (sn *snapshot) encoded() ([]byte, error) {
	sn.once.Do(func() {
		b, err := json.MarshalIndent(sn.r, "", "  ")
		sn.json, sn.encErr = append(b, '\n'), err
	})
	return sn.json, sn.encErr
}

// get returns an answer asked at most maxAge ago, or for maxAge 0 one
// asked after get was called: the question in flight, if any was asked
// after that, else a new one. A failed answer is never reused. It waits
// at most until ctx ends.
func (s *snapshots) get(ctx context.Context, maxAge time.Duration) (*snapshot, error) {
	called := time.Now()
	for {
		s.mu.Lock()
		if l := s.last; l != nil && l.err == nil && maxAge > 0 && time.Since(l.asked) <= maxAge {
			s.mu.Unlock()
			return l, nil
		}
		flight := s.flight
		if flight == nil {
			flight = make(chan struct{})
			s.flight = flight
			go s.ask(flight)
		}
		s.mu.Unlock()
		select {
		case <-flight:
		case <-ctx.Done():
			return nil, fmt.Errorf("read the daemon's state: no answer: %w", context.Cause(ctx))
		}
		s.mu.Lock()
		sn := s.next
		s.mu.Unlock()
		if sn != nil && (maxAge > 0 || !sn.asked.Before(called)) {
			if sn.err != nil {
				return nil, sn.err
			}
			return sn, nil
		}
		// The answer was to a question asked before this call: ask again.
	}
}

// ask asks the Source once, within SourceTimeout, and publishes the
// answer to those waiting on flight.
func (s *snapshots) ask(flight chan struct{}) {
	base := s.base
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithTimeout(base, SourceTimeout)
	defer cancel()
	sn := &snapshot{asked: time.Now()}
	sn.r, sn.err = callSource(ctx, s.src)
	s.mu.Lock()
	s.last, s.next, s.flight = sn, sn, nil
	s.mu.Unlock()
	close(flight)
}
