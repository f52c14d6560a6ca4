package rig

import (
	"fmt"
	"sync"
	"time"

	lv "libvirt.org/go/libvirt"
)

// LifecycleEvent is a domain lifecycle event as it reached this process,
// with its arrival time on this machine's clock (the clock ip -ts monitor
// stamps route changes with).
type LifecycleEvent struct {
	Host   string
	Domain string
	Event  lv.DomainEventType
	Detail int
	At     time.Time
}

// String renders the event as virsh event does.
func (e LifecycleEvent) String() string { return EventText(e.Event, e.Detail) }

// Is reports whether the event is ev with detail.
func (e LifecycleEvent) Is(ev lv.DomainEventType, detail int) bool {
	return e.Event == ev && e.Detail == detail
}

var (
	loopOnce sync.Once
	loopErr  error
)

// startEventLoop registers libvirt's default event loop implementation
// (once per process, before any connection) and runs it.
func startEventLoop() error {
	loopOnce.Do(func() {
		if loopErr = lv.EventRegisterDefaultImpl(); loopErr != nil {
			return
		}
		go func() {
			for {
				if err := lv.EventRunDefaultImpl(); err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	})
	return loopErr
}

// LifecycleWatcher records the lifecycle events of every domain of some
// libvirtds, in-process (libvirt.org/go/libvirt).
type LifecycleWatcher struct {
	mu   sync.Mutex
	evs  []LifecycleEvent
	regs []reg
}

type reg struct {
	conn *lv.Connect
	id   int
}

// WatchLifecycle records the lifecycle events of every domain of the
// libvirtds at the URIs of hosts (host name -> URI), on connections of its
// own.
func WatchLifecycle(hosts map[string]string) (*LifecycleWatcher, error) {
	if err := startEventLoop(); err != nil {
		return nil, fmt.Errorf("libvirt event loop: %w", err)
	}
	w := &LifecycleWatcher{}
	for name, uri := range hosts {
		conn, err := lv.NewConnect(uri)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("connect %s: %w", uri, err)
		}
		id, err := conn.DomainEventLifecycleRegister(nil, func(_ *lv.Connect, d *lv.Domain, ev *lv.DomainEventLifecycle) {
			at := time.Now()
			dn, _ := d.GetName()
			w.mu.Lock()
			w.evs = append(w.evs, LifecycleEvent{Host: name, Domain: dn, Event: ev.Event, Detail: ev.Detail, At: at})
			w.mu.Unlock()
		})
		if err != nil {
			conn.Close()
			w.Close()
			return nil, fmt.Errorf("lifecycle events of %s: %w", uri, err)
		}
		w.regs = append(w.regs, reg{conn, id})
	}
	return w, nil
}

// Len returns how many events were recorded: an index for Wait.
func (w *LifecycleWatcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.evs)
}

// Events returns the events recorded so far.
func (w *LifecycleWatcher) Events() []LifecycleEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]LifecycleEvent(nil), w.evs...)
}

// Wait polls until match accepts an event from index from on.
func (w *LifecycleWatcher) Wait(timeout time.Duration, from int, match func(LifecycleEvent) bool) (LifecycleEvent, bool) {
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range w.Events()[from:] {
			if match(e) {
				return e, true
			}
		}
		if time.Now().After(deadline) {
			return LifecycleEvent{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Close deregisters and closes the watcher's connections.
func (w *LifecycleWatcher) Close() {
	for _, r := range w.regs {
		_ = r.conn.DomainEventDeregister(r.id)
		r.conn.Close()
	}
	w.regs = nil
}

// EventText renders an event as virsh event does: "Resumed Migrated".
func EventText(ev lv.DomainEventType, detail int) string {
	names := map[lv.DomainEventType]string{
		lv.DOMAIN_EVENT_DEFINED: "Defined", lv.DOMAIN_EVENT_UNDEFINED: "Undefined",
		lv.DOMAIN_EVENT_STARTED: "Started", lv.DOMAIN_EVENT_SUSPENDED: "Suspended",
		lv.DOMAIN_EVENT_RESUMED: "Resumed", lv.DOMAIN_EVENT_STOPPED: "Stopped",
		lv.DOMAIN_EVENT_SHUTDOWN: "Shutdown", lv.DOMAIN_EVENT_PMSUSPENDED: "PMSuspended",
		lv.DOMAIN_EVENT_CRASHED: "Crashed",
	}
	n, ok := names[ev]
	if !ok {
		n = fmt.Sprintf("Event%d", ev)
	}
	d := fmt.Sprintf("Detail%d", detail)
	switch {
	case ev == lv.DOMAIN_EVENT_STARTED && detail == int(lv.DOMAIN_EVENT_STARTED_MIGRATED),
		ev == lv.DOMAIN_EVENT_SUSPENDED && detail == int(lv.DOMAIN_EVENT_SUSPENDED_MIGRATED),
		ev == lv.DOMAIN_EVENT_RESUMED && detail == int(lv.DOMAIN_EVENT_RESUMED_MIGRATED),
		ev == lv.DOMAIN_EVENT_STOPPED && detail == int(lv.DOMAIN_EVENT_STOPPED_MIGRATED):
		d = "Migrated"
	case ev == lv.DOMAIN_EVENT_STARTED && detail == int(lv.DOMAIN_EVENT_STARTED_BOOTED):
		d = "Booted"
	case ev == lv.DOMAIN_EVENT_STOPPED && detail == int(lv.DOMAIN_EVENT_STOPPED_DESTROYED):
		d = "Destroyed"
	case ev == lv.DOMAIN_EVENT_RESUMED && detail == int(lv.DOMAIN_EVENT_RESUMED_UNPAUSED):
		d = "Unpaused"
	case ev == lv.DOMAIN_EVENT_SUSPENDED && detail == int(lv.DOMAIN_EVENT_SUSPENDED_PAUSED):
		d = "Paused"
	case ev == lv.DOMAIN_EVENT_RESUMED && detail == int(lv.DOMAIN_EVENT_RESUMED_POSTCOPY):
		d = "Post-copy"
	case ev == lv.DOMAIN_EVENT_SUSPENDED && detail == int(lv.DOMAIN_EVENT_SUSPENDED_POSTCOPY):
		d = "Post-copy"
	}
	return n + " " + d
}
