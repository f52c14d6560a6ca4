// Package safefile opens and reads the files virtbgp is told to read (its
// config, the mapping) without trusting what is at the path: only a regular
// file (after symbolic links are followed) is read, it is opened without
// blocking (a FIFO at the path would block open(2) forever) and at most a
// given number of bytes are read (a link to /dev/zero, or a huge file, would
// grow memory without bound).
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is why a path that is not a regular file (a FIFO, a
// device, a socket, a directory) is not read.
var ErrNotRegular = errors.New("not a regular file")

// TooBigError is why a file bigger than the limit is not read.
type TooBigError struct {
	Size  int64 // the file's size (at least Limit+1 if it grew while read)
	Limit int64
}

func (e *TooBigError) Error() string {
	return fmt.Sprintf("%d bytes, more than the limit of %d bytes", e.Size, e.Limit)
}

// Open opens the regular file at path for reading without blocking, and
// returns it with its stat. Anything but a regular file is an
// *fs.PathError wrapping ErrNotRegular that names its kind; limit > 0 also
// refuses files bigger than limit (a *fs.PathError wrapping *TooBigError).
func Open(path string, limit int64) (*os.File, fs.FileInfo, error) {
	// O_NONBLOCK: open(2) of a FIFO without a writer would wait for one.
	// It has no effect on reading a regular file, which is all that is read.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := check(f, path, limit)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// check stats the opened file f (at path): a regular file of at most limit
// bytes (limit > 0), else the errors Open documents.
func check(f *os.File, path string, limit int64) (fs.FileInfo, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(st.Mode()))}
	}
	if limit > 0 && st.Size() > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: &TooBigError{Size: st.Size(), Limit: limit}}
	}
	return st, nil
}

// ReadFile reads the regular file at path, as Open checks it, and at most
// limit bytes of it (limit > 0): a file that grows past limit while it is
// read is refused too.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, st, err := Open(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, path, st.Size(), limit)
}

// ReadAll reads what is left of f, an opened regular file of size bytes (its
// stat), refusing more than limit bytes (limit > 0).
func ReadAll(f *os.File, size, limit int64) ([]byte, error) {
	return readAll(f, f.Name(), size, limit)
}

func readAll(r io.Reader, path string, size, limit int64) ([]byte, error) {
	if limit <= 0 {
		return io.ReadAll(r)
	}
	buf := make([]byte, 0, min(size, limit)+1)
	for {
		if int64(len(buf)) > limit {
			return nil, &fs.PathError{Op: "read", Path: path, Err: &TooBigError{Size: int64(len(buf)), Limit: limit}}
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// kind names a file mode's type in messages.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// ReadInDir reads the regular file name in the directory dir, a state
// file virtbgp wrote: opened through an os.Root (a symbolic link is
// followed only while it stays inside dir: nothing outside is read) and
// without blocking, and at most limit bytes of it (limit > 0), with the
// errors of Open and ReadFile.
func ReadInDir(dir, name string, limit int64) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	path := filepath.Join(dir, name)
	st, err := check(f, path, limit)
	if err != nil {
		return nil, err
	}
	return readAll(f, path, st.Size(), limit)
}

// WriteInDir replaces the file name in the directory dir with data,
// atomically: a new file name+".tmp" is created inside dir through an
// os.Root (whatever is at that name is removed first, a link included,
// not followed; O_EXCL: the new file is never a link nor a file that was
// already there), written with mode perm, synced, renamed over name, and
// dir synced. A crash leaves the old file or the new one, never a mix.
func WriteInDir(dir, name string, data []byte, perm fs.FileMode) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tmp := name + ".tmp"
	if err := root.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return err
	}
	if d, err := root.Open("."); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
