package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RouteEvent is one route change in a kernel routing table of the tor
// namespace, as ip -ts monitor route reports it.
type RouteEvent struct {
	// Time is when ip received the netlink message (microseconds).
	Time time.Time
	// Deleted is true for a removed route.
	Deleted bool
	// Type is the route type when not unicast: local, broadcast,
	// blackhole, unreachable, ...
	Type   string
	Prefix netip.Prefix
	// Gateway is the next hop ("via") of a route with one next hop. An
	// ECMP route (FRR with maximum-paths) has none: its next hops are in
	// Nexthops.
	Gateway netip.Addr
	// Nexthops are the next hops of an ECMP route, from the "nexthop via"
	// lines ip prints under it; empty for a route with one next hop.
	Nexthops []netip.Addr
	Dev      string
	// Table is the routing table: 254 for main, [BIRDTable] for BIRD's.
	Table int
	// Proto is the route's protocol: "bird" for BIRD, "bgp" for FRR.
	Proto string
	// Line is ip's line without the timestamp.
	Line string
}

// ParseRouteEvent parses one line of "ip -ts monitor route". ok is false
// for lines that are not route events.
func ParseRouteEvent(line string) (ev RouteEvent, ok bool) {
	rest, found := strings.CutPrefix(line, "[")
	if !found {
		return ev, false
	}
	ts, rest, found := strings.Cut(rest, "]")
	if !found {
		return ev, false
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.999999", ts, time.Local)
	if err != nil {
		return ev, false
	}
	ev.Time = t
	ev.Line = strings.TrimSpace(rest)
	f := strings.Fields(rest)
	if len(f) > 0 && f[0] == "Deleted" {
		ev.Deleted, f = true, f[1:]
	}
	switch {
	case len(f) == 0:
		return ev, false
	case f[0] == "unicast", f[0] == "local", f[0] == "broadcast", f[0] == "multicast", f[0] == "anycast",
		f[0] == "blackhole", f[0] == "unreachable", f[0] == "prohibit", f[0] == "throw", f[0] == "nat":
		ev.Type, f = f[0], f[1:]
	}
	if len(f) == 0 {
		return ev, false
	}
	pfx := f[0]
	if pfx == "default" {
		pfx = "0.0.0.0/0"
		if strings.Contains(ev.Line, ":") {
			pfx = "::/0"
		}
	}
	if !strings.Contains(pfx, "/") {
		a, err := netip.ParseAddr(pfx)
		if err != nil {
			return ev, false
		}
		ev.Prefix = netip.PrefixFrom(a, a.BitLen())
	} else if ev.Prefix, err = netip.ParsePrefix(pfx); err != nil {
		return ev, false
	}
	ev.Table = 254
	for i := 1; i+1 < len(f); i++ {
		switch f[i] {
		case "via":
			v := f[i+1]
			if v == "inet" || v == "inet6" { // "via inet6 fe80::1" (IPv4 route over an IPv6 next hop)
				if i+2 < len(f) {
					v = f[i+2]
				}
			}
			ev.Gateway, _ = netip.ParseAddr(v)
		case "dev":
			ev.Dev = f[i+1]
		case "proto":
			ev.Proto = f[i+1]
		case "table":
			switch f[i+1] {
			case "main":
				ev.Table = 254
			case "local":
				ev.Table = 255
			default:
				ev.Table, _ = strconv.Atoi(f[i+1])
			}
		}
	}
	return ev, true
}

// RouteMonitor records the route changes of the tor namespace, with
// timestamps, from ip -ts monitor route.
type RouteMonitor struct {
	lab  *Lab
	proc *process
	cmd  *exec.Cmd

	lost atomic.Int64 // netlink overruns ip reported: events were lost

	mu      sync.Mutex
	events  []RouteEvent
	markers int           // marker route events seen (Sync)
	changed chan struct{} // closed and replaced on each new event
	done    chan struct{} // closed when ip's output ended
}

// Markers the monitor uses to know that ip listens: a route in a table of
// its own, filtered out of the events.
const (
	monitorTable  = 4242
	monitorMarker = "198.18.0.254/32"
)

// MonitorRoutes starts ip -ts monitor route in the tor namespace and
// returns once it receives changes. Close it when done; Down ends it too.
func (l *Lab) MonitorRoutes(ctx context.Context) (*RouteMonitor, error) {
	l.mu.Lock()
	l.monitor++
	name := fmt.Sprintf("route-monitor-%d", l.monitor)
	l.mu.Unlock()
	// A big socket buffer (the kernel caps it at net.core.rmem_max, times
	// two): a ToR installing thousands of routes at once would overrun the
	// default 1 MB, and ip would lose their events.
	argv := []string{"ip", "-ts", "-rcvbuf", "67108864", "-n", l.TorNS, "monitor", "route"}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("route monitor: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("route monitor: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("route monitor: %s: %w", strings.Join(argv, " "), err)
	}
	p := &process{Name: name, PID: cmd.Process.Pid}
	if _, start, err := procStat(p.PID); err == nil {
		p.Start = start
	}
	m := &RouteMonitor{lab: l, proc: p, cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	if err := l.track(p); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	sawMarker := make(chan struct{})
	go m.read(stdout, sawMarker)
	go m.readErrors(stderr)

	// ip subscribes some time after it starts: add and delete a marker
	// route until it reports one of the changes. (Replacing a route with an
	// identical one would not be reported again.)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	table := strconv.Itoa(monitorTable)
	err = Eventually(wctx, 10*time.Millisecond, func(ctx context.Context) error {
		_, _ = run(ctx, "ip", "-n", l.TorNS, "route", "del", "blackhole", monitorMarker, "table", table)
		if _, err := run(ctx, "ip", "-n", l.TorNS, "route", "add", "blackhole", monitorMarker, "table", table); err != nil {
			return err
		}
		select {
		case <-sawMarker:
			return nil
		case <-time.After(20 * time.Millisecond):
			return fmt.Errorf("ip monitor has not reported the marker route yet")
		}
	})
	_, _ = run(context.WithoutCancel(ctx), "ip", "-n", l.TorNS, "route", "del", "blackhole", monitorMarker, "table", table)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("route monitor: %w", err)
	}
	return m, nil
}

// ParseNexthopLine parses a line under an ECMP route of "ip monitor
// route", "\tnexthop via 198.18.0.11 dev br0 weight 1", into its next hop.
func ParseNexthopLine(line string) (netip.Addr, bool) {
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != "nexthop" || f[1] != "via" || (line[0] != ' ' && line[0] != '\t') {
		return netip.Addr{}, false
	}
	v := f[2]
	if (v == "inet" || v == "inet6") && len(f) > 3 {
		v = f[3]
	}
	a, err := netip.ParseAddr(v)
	return a, err == nil
}

func (m *RouteMonitor) read(r io.Reader, sawMarker chan struct{}) {
	defer close(m.done)
	marker := netip.MustParsePrefix(monitorMarker)
	saw := false
	br := bufio.NewReaderSize(r, 1<<16)
	next := func() (string, bool) {
		line, err := br.ReadString('\n')
		if line == "" && err != nil {
			return "", false
		}
		return strings.TrimRight(line, "\n"), true
	}
	published := false // the last line was an event that went out
	for {
		line, ok := next()
		if !ok {
			break
		}
		if nh, ok := ParseNexthopLine(line); ok {
			// A next hop whose line came in a later read than its
			// route's: the route's event is out already.
			if published {
				m.mu.Lock()
				last := &m.events[len(m.events)-1]
				last.Nexthops = append(slices.Clip(last.Nexthops), nh)
				close(m.changed)
				m.changed = make(chan struct{})
				m.mu.Unlock()
			}
			continue
		}
		published = false
		ev, ok := ParseRouteEvent(line)
		if !ok {
			continue
		}
		// ip writes a route and its next-hop lines at once: take those
		// that came in the same read before the event goes out.
		for br.Buffered() > 0 {
			if b, _ := br.Peek(1); len(b) == 0 || (b[0] != '\t' && b[0] != ' ') {
				break
			}
			line, ok := next()
			if !ok {
				break
			}
			if nh, ok := ParseNexthopLine(line); ok {
				ev.Nexthops = append(ev.Nexthops, nh)
			}
		}
		if ev.Table == monitorTable && ev.Prefix == marker {
			if !saw {
				saw = true
				close(sawMarker)
			}
			m.mu.Lock()
			m.markers++
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
			continue
		}
		m.mu.Lock()
		m.events = append(m.events, ev)
		close(m.changed)
		m.changed = make(chan struct{})
		m.mu.Unlock()
		published = true
	}
	if m.cmd != nil {
		_ = m.cmd.Wait()
	}
}

// readErrors counts the overruns ip reports ("netlink receive error No
// buffer space available"): each lost events.
func (m *RouteMonitor) readErrors(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "No buffer space") {
			m.lost.Add(1)
			m.mu.Lock()
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
		}
	}
}

// Lost returns how many times the monitor lost events (a netlink buffer
// overrun): a measurement spanning one is incomplete. It does not lock:
// a match function of Wait may call it.
func (m *RouteMonitor) Lost() int { return int(m.lost.Load()) }

// Events returns the events recorded so far.
func (m *RouteMonitor) Events() []RouteEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]RouteEvent(nil), m.events...)
}

// Len returns how many events were recorded so far: an index for Wait.
func (m *RouteMonitor) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

// Wait returns the first event from index from on (0: since the start)
// that match accepts, waiting for it until ctx is done.
func (m *RouteMonitor) Wait(ctx context.Context, from int, match func(RouteEvent) bool) (RouteEvent, error) {
	for {
		m.mu.Lock()
		for i := from; i < len(m.events); i++ {
			if match(m.events[i]) {
				ev := m.events[i]
				m.mu.Unlock()
				return ev, nil
			}
		}
		from = max(from, len(m.events))
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-changed:
		case <-m.done:
			return RouteEvent{}, fmt.Errorf("route monitor: ip monitor ended")
		case <-ctx.Done():
			return RouteEvent{}, fmt.Errorf("route monitor: no matching event: %w", ctx.Err())
		}
	}
}

// Close ends ip monitor.
func (m *RouteMonitor) Close() error {
	err := m.proc.stop(context.Background(), syscall.SIGTERM, 2*time.Second)
	<-m.done
	return err
}
