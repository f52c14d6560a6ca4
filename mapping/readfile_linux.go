package mapping

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// fileData is the contents of a mapping file, as readFile returns them.
//
// A big regular file (one read in chunks) is read into memory mapped apart
// from the Go heap. Its contents are only needed while the file is parsed
// (nothing read from it refers to them: the YAML parser copies what it
// keeps), but in the heap they would count as live data for the whole load,
// and the garbage collector lets the heap grow to twice the live data: a
// 14 MB file would cost some 28 MB of peak memory. Outside the heap, the
// part of the file already parsed is given back to the system as the
// chunked read goes (drop), and the rest when the file is done (release).
type fileData struct {
	data    []byte
	mapped  []byte // the mapping, nil when data is in the heap
	dropped int    // data[:dropped] is given back: it reads as zeros
}

// readFile returns the contents of the file at path, as os.ReadFile does.
// Anything unusual (an error, a file that changes size while it is read)
// falls back to os.ReadFile, so that errors are the same.
func readFile(path string) (*fileData, error) {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() || st.Size() < chunkMinFile || st.Size() > 1<<40 {
		return readHeap(path)
	}
	size := int(st.Size())
	f, err := os.Open(path)
	if err != nil {
		return readHeap(path)
	}
	defer f.Close()
	// One byte more than the size, to see whether the file grew.
	buf, err := syscall.Mmap(-1, 0, size+1, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return readHeap(path)
	}
	n, err := io.ReadFull(f, buf)
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != size {
		// An error, or the file is not the size it was.
		_ = syscall.Munmap(buf)
		return readHeap(path)
	}
	return &fileData{data: buf[:n:n], mapped: buf}, nil
}

func readHeap(path string) (*fileData, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &fileData{data: data}, nil
}

// drop gives back the whole pages of data[:end], which are no longer read.
func (d *fileData) drop(end int) {
	if d.mapped == nil {
		return
	}
	end -= end % os.Getpagesize()
	if end <= d.dropped {
		return
	}
	if syscall.Madvise(d.mapped[d.dropped:end], syscall.MADV_DONTNEED) == nil {
		d.dropped = end
	}
}

// release gives back all the memory; data must not be used any more.
func (d *fileData) release() {
	if d.mapped != nil {
		_ = syscall.Munmap(d.mapped)
		d.mapped, d.data = nil, nil
	}
}
