package daemon

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/virtbgp/virtbgp/internal/config"
)

// UnsafeDirs names the problems of the directories virtbgp writes as root
// (the state directory, the control socket's directory): a directory that
// another user can write, or one of its parents that another user can
// write without the sticky bit, lets that user plant a symbolic link or a
// fake socket where root writes or connects. A directory that does not
// exist yet is fine (virtbgp creates it 0700). `virtbgp check` prints the
// problems as warnings; the daemon refuses to start with any.
func UnsafeDirs(cfg *config.Config) []string {
	var out []string
	for _, d := range []struct{ what, dir string }{
		{"state-dir", cfg.StateDir},
		{"control.socket", filepath.Dir(cfg.Control.Socket)},
	} {
		if p := unsafeDir(d.dir); p != "" {
			out = append(out, fmt.Sprintf("%s: %s", d.what, p))
		}
	}
	return out
}

// unsafeDir returns what is unsafe about dir and its parents, "" if
// nothing is. Both the path as given and the one its symbolic links lead
// to are checked: a link in a directory another user can write can be
// pointed elsewhere later.
func unsafeDir(dir string) string {
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err != nil {
		// Not there yet: its nearest existing parent decides.
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		return unsafeDir(parent)
	}
	if p := unsafeChain(dir); p != "" {
		return p
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Sprintf("cannot resolve %s: %v", dir, err)
	}
	return unsafeChain(real)
}

// unsafeChain checks dir and each of its parents, without following a
// symbolic link at any of them: none may belong to a user other than root
// and this process's, dir may not be writable by group or others, and a
// parent only with the sticky bit.
func unsafeChain(dir string) string {
	uid := uint32(os.Geteuid())
	self := true
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		if err != nil {
			return fmt.Sprintf("cannot check %s: %v", d, err)
		}
		owner := uint32(0)
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = st.Uid
		}
		mode := fi.Mode()
		switch {
		case owner != 0 && owner != uid:
			return fmt.Sprintf("%s belongs to uid %d, who can replace what root writes in it", d, owner)
		case mode&fs.ModeSymlink == 0 && mode.Perm()&0o022 != 0 && (self || mode&fs.ModeSticky == 0):
			return fmt.Sprintf("%s is writable by other users (mode %s): one of them can put a symbolic link or a fake socket where root writes; use a directory only root can write, like %s", d, mode, config.DefaultStateDir)
		}
		if filepath.Dir(d) == d {
			return ""
		}
		self = false
	}
}
