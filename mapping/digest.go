package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Digest returns a fingerprint of what Load(path) would read: the names and
// contents of the mapping's files. Two equal digests mean the same input, so
// a watcher can skip a reload of unchanged content, and never retry content
// that already failed. It does not parse anything.
func Digest(path string) (string, error) {
	files, err := mappingFiles(path)
	if err != nil {
		return "", fmt.Errorf("digest of mapping %s: %w", path, err)
	}
	h := sha256.New()
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return "", fmt.Errorf("digest of mapping %s: %w", path, err)
		}
		io.WriteString(h, strconv.Quote(f)+"\n")
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", fmt.Errorf("digest of mapping %s: %w", path, err) // err names the file
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
