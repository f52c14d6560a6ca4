//go:build !linux

package mapping

import "os"

// fileData is the contents of a mapping file, as readFile returns them.
type fileData struct {
	data    []byte
	dropped int // always 0 here
}

// readFile returns the contents of the file at path, as os.ReadFile does.
func readFile(path string) (*fileData, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &fileData{data: data}, nil
}

func (d *fileData) drop(end int) {}
func (d *fileData) release()     {}
