package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// Watching the mapping
//
// The watcher loads the mapping when a writer is done with it, never in
// the middle of a write: on a close after writing (IN_CLOSE_WRITE), a
// rename into place (IN_MOVED_TO), a deletion, or a symbolic link created
// or replaced. A write alone (IN_MODIFY) does not count, so a slow writer
// that writes in place is read only once it closes the file.
//
// It watches directories, never the files: the directory of every
// symbolic link on the way from mapping.path to the files (so that a link
// swapped atomically, `ln -s new tmp; mv -T tmp current`, as Kubernetes
// ConfigMaps and release-directory deploys do, is seen), the directory
// holding the mapping, and the mapping directory itself. On every relevant
// event it resolves the path again and moves its watches to where the
// path leads now (a mapping directory replaced by `mv dir.new dir` is
// watched again). When a directory cannot be watched (it does not exist,
// or inotify refuses), status and the virtbgp_mapping_watch_ok metric say
// so, and the watcher polls the files every watchPoll until it can.
//
// Changes are debounced: a reload comes watchQuiet after the last change,
// and at most watchMaxWait after the first of a burst, so that a writer
// that never stops cannot postpone reloads forever.

const (
	watchQuiet   = 300 * time.Millisecond
	watchMaxWait = 2 * time.Second
	watchPoll    = 5 * time.Second
	// maxLinkHops bounds the symbolic links followed when resolving, as
	// the kernel does (ELOOP).
	maxLinkHops = 40
)

// dirMask is what the watcher asks inotify for on each directory.
const dirMask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CREATE |
	unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// watchMapping watches the mapping at path until ctx ends (see above),
// and loads it after each burst of changes.
func (d *Daemon) watchMapping(ctx context.Context, path string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("watch mapping: inotify: %w", err)
	}
	w := &watcher{
		path:  path,
		fd:    fd,
		f:     os.NewFile(uintptr(fd), "inotify"), // read through the runtime poller
		wds:   map[int32]string{},
		byDir: map[string]int32{},
		kick:  make(chan struct{}, 1),
		state: func(st status.Watch) { d.setWatchState(ctx, st) },
	}
	// Closed once run has returned (the inotify descriptor is not used
	// after): that ends the reading goroutine.
	defer w.f.Close()
	fire := make(chan struct{}, 1)
	go debounce(ctx, w.kick, fire, watchQuiet, watchMaxWait)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-fire:
				_, _ = d.loadMapping(ctx, loadHow{}) // logged and recorded
			}
		}
	}()
	w.run(ctx)
	return nil
}

// setWatchState records the watcher's state, for status and metrics.
func (d *Daemon) setWatchState(ctx context.Context, st status.Watch) {
	_, _ = call(ctx, d, "watch state", func(context.Context) (struct{}, error) {
		if st.State != d.watchState.State || st.Error != d.watchState.Error {
			if st.State == "ok" {
				d.log.Info("watching the mapping for changes", "dirs", st.Dirs)
			} else {
				d.log.Warn("cannot watch the mapping with inotify; polling it", "error", st.Error, "every", watchPoll)
			}
		}
		d.watchState = st
		d.metrics.WatchOK(st.State == "ok")
		return struct{}{}, nil
	})
}

// watcher is the inotify side of watchMapping; run owns it.
type watcher struct {
	path  string
	fd    int
	f     *os.File
	wds   map[int32]string // watch descriptor -> directory
	byDir map[string]int32
	want  watchSet
	kick  chan struct{} // capacity 1: a change was seen
	state func(status.Watch)

	degraded bool
	print    string // the files' fingerprint, while polling
}

// run reads events until the inotify file is closed.
func (w *watcher) run(ctx context.Context) {
	w.sync()
	events := make(chan []byte)
	go func() {
		defer close(events)
		for {
			buf := make([]byte, 64<<10)
			n, err := w.f.Read(buf)
			if err != nil {
				return
			}
			select {
			case events <- buf[:n]:
			case <-ctx.Done():
				return
			}
		}
	}()
	poll := time.NewTicker(watchPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case buf, ok := <-events:
			if !ok {
				return
			}
			if w.handle(buf) {
				w.sync()
				w.poke()
			}
		case <-poll.C:
			if !w.degraded {
				continue
			}
			w.sync()
			if p := fingerprint(w.path); p != w.print || !w.degraded {
				w.print = p
				w.poke()
			}
		}
	}
}

func (w *watcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// handle looks at a buffer of events and reports whether one of them
// matters to the mapping.
func (w *watcher) handle(buf []byte) bool {
	relevant := false
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
		off += unix.SizeofInotifyEvent + int(ev.Len)
		name := strings.TrimRight(string(nameBytes), "\x00")
		switch {
		case ev.Mask&unix.IN_Q_OVERFLOW != 0:
			relevant = true // events lost: look again
		case ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
			if dir, ok := w.wds[ev.Wd]; ok {
				if ev.Mask&unix.IN_IGNORED != 0 {
					delete(w.wds, ev.Wd)
					if w.byDir[dir] == ev.Wd {
						delete(w.byDir, dir)
					}
				}
				relevant = true // a watched directory went away
			}
		default:
			dir, ok := w.wds[ev.Wd]
			if !ok || !w.want.matters(dir, name) {
				continue
			}
			if ev.Mask&unix.IN_CREATE != 0 && ev.Mask&unix.IN_ISDIR == 0 {
				// A new file is read when its writer closes it; a new
				// symbolic link is complete at once.
				if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					continue
				}
			}
			relevant = true
		}
	}
	return relevant
}

// sync resolves the path again and moves the watches to match, then
// reports the state.
func (w *watcher) sync() {
	want, rerr := resolveWatch(w.path)
	w.want = want
	var problems []string
	if rerr != nil {
		problems = append(problems, rerr.Error())
	}
	dirs := want.dirs()
	for _, dir := range dirs {
		wd, err := unix.InotifyAddWatch(w.fd, dir, dirMask)
		if err != nil {
			problems = append(problems, fmt.Sprintf("watch %s: %v", dir, err))
			continue
		}
		if old, ok := w.byDir[dir]; ok && old != int32(wd) && w.wds[old] == dir {
			_, _ = unix.InotifyRmWatch(w.fd, uint32(old)) // the directory that was here before
			delete(w.wds, old)
		}
		w.byDir[dir] = int32(wd)
		w.wds[int32(wd)] = dir
	}
	for dir, wd := range w.byDir {
		if !slices.Contains(dirs, dir) {
			_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
			delete(w.byDir, dir)
			delete(w.wds, wd)
		}
	}
	st := status.Watch{State: "ok", Dirs: dirs}
	if len(problems) > 0 {
		st = status.Watch{State: "polling", Dirs: dirs, Error: strings.Join(problems, "; ")}
		if !w.degraded {
			w.print = fingerprint(w.path)
		}
	}
	w.degraded = len(problems) > 0
	w.state(st)
}

// watchSet is what to watch for a mapping path: in each directory, the
// names that matter, and the mapping directory whose mapping files all
// matter ("" if the mapping is a file).
type watchSet struct {
	names map[string]map[string]bool
	all   string
}

func (s watchSet) matters(dir, name string) bool {
	return s.names[dir][name] || (dir == s.all && mapping.IsMappingFile(name))
}

// dirs returns the directories to watch, sorted.
func (s watchSet) dirs() []string {
	var out []string
	for d := range s.names {
		out = append(out, d)
	}
	if s.all != "" && s.names[s.all] == nil {
		out = append(out, s.all)
	}
	slices.Sort(out)
	return out
}

// resolveWatch follows path, component by component and through every
// symbolic link, and returns what to watch: the directory holding each
// link met and the final component, and the final directory if the path
// leads to one. A component that does not exist is an error, with what
// leads to it still in the set (so that its creation is seen).
func resolveWatch(path string) (watchSet, error) {
	s := watchSet{names: map[string]map[string]bool{}}
	add := func(dir, name string) {
		if s.names[dir] == nil {
			s.names[dir] = map[string]bool{}
		}
		s.names[dir][name] = true
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return s, fmt.Errorf("resolve %s: %w", path, err)
	}
	pending := strings.Split(abs, "/")
	cur, hops := "/", 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if err != nil {
			add(cur, c)
			return s, fmt.Errorf("resolve %s: %w", path, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			add(cur, c)
			if hops++; hops > maxLinkHops {
				return s, fmt.Errorf("resolve %s: %w", path, unix.ELOOP)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return s, fmt.Errorf("resolve %s: %w", path, err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			pending = append(strings.Split(target, "/"), pending...)
			continue
		}
		if !slices.ContainsFunc(pending, func(p string) bool { return p != "" && p != "." }) {
			add(cur, c)
			if fi.IsDir() {
				s.all = next
			}
		} else if !fi.IsDir() {
			return s, fmt.Errorf("resolve %s: %s is not a directory", path, next)
		}
		cur = next
	}
	return s, nil
}

// fingerprint is what the poller compares: the size, time and inode of
// the files at path (through links), or the error.
func fingerprint(path string) string {
	var b strings.Builder
	one := func(p string) {
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", p, errors.Unwrap(err))
			return
		}
		var ino uint64
		if st, ok := fi.Sys().(*unix.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(&b, "%s %d %d %d\n", p, fi.Size(), fi.ModTime().UnixNano(), ino)
	}
	one(path)
	if entries, err := os.ReadDir(path); err == nil {
		for _, e := range entries {
			if mapping.IsMappingFile(e.Name()) {
				one(filepath.Join(path, e.Name()))
			}
		}
	}
	return b.String()
}

// debounce sends on out (without blocking) watchQuiet after the last kick
// on in, or maxWait after the first kick of a burst, whichever comes first.
func debounce(ctx context.Context, in <-chan struct{}, out chan<- struct{}, quiet, maxWait time.Duration) {
	var quietC, maxC <-chan time.Time
	var quietT, maxT *time.Timer
	stop := func() {
		if quietT != nil {
			quietT.Stop()
		}
		if maxT != nil {
			maxT.Stop()
		}
		quietC, maxC, quietT, maxT = nil, nil, nil, nil
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-in:
			if quietT != nil {
				quietT.Stop()
			}
			quietT = time.NewTimer(quiet)
			quietC = quietT.C
			if maxT == nil {
				maxT = time.NewTimer(maxWait)
				maxC = maxT.C
			}
			continue
		case <-quietC:
		case <-maxC:
		}
		stop()
		select {
		case out <- struct{}{}:
		default: // a reload is already pending
		}
	}
}
