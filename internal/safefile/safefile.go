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
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(st.Mode()))}
	}
	if limit > 0 && st.Size() > limit {
		f.Close()
		return nil, nil, &fs.PathError{Op: "read", Path: path, Err: &TooBigError{Size: st.Size(), Limit: limit}}
	}
	return f, st, nil
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
