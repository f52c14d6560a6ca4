package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/virtbgp/virtbgp/mapping"
)

// watchDebounce is how long the file watcher waits after the last change
// before it asks for a reload: editors and `git checkout` write in several
// steps.
const watchDebounce = 300 * time.Millisecond

// watchMapping watches the mapping file (through its directory, since
// editors replace files by renaming) or directory, and after a burst of
// changes hints the main loop to reload. The main loop skips content that
// is unchanged or already failed.
func (d *Daemon) watchMapping(ctx context.Context, path string) error {
	dir, file := path, ""
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		dir, file = filepath.Dir(path), filepath.Base(path)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch mapping: %w", err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch mapping directory %s: %w", dir, err)
	}
	d.log.Info("watching the mapping for changes", "dir", dir)
	relevant := func(name string) bool {
		if file != "" {
			return filepath.Base(name) == file
		}
		return mapping.IsMappingFile(name)
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if relevant(ev.Name) && ev.Op != fsnotify.Chmod {
				debounce.Reset(watchDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			d.log.Warn("mapping watcher error; reloading to be safe", "error", err) // e.g. queue overflow
			debounce.Reset(watchDebounce)
		case <-debounce.C:
			select {
			case d.watch <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}
}
