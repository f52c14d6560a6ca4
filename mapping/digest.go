package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"

	"github.com/virtbgp/virtbgp/internal/safefile"
)

// Digest returns a fingerprint of what Load(path) would read: the names and
// contents of the mapping's files. Two equal digests mean the same input, so
// a watcher can skip a reload of unchanged content, and never retry content
// that already failed. It does not parse anything. Like Load, it reads only
// regular files, and at most DefaultMaxBytes in all.
func Digest(path string) (string, error) {
	return DigestMax(path, DefaultMaxBytes)
}

// DigestMax is Digest reading at most maxBytes in all (<= 0: no limit).
func DigestMax(path string, maxBytes int64) (string, error) {
	files, err := mappingFiles(path)
	if err != nil {
		return "", fmt.Errorf("digest of mapping %s: %w", path, err)
	}
	h := sha256.New()
	var read int64
	for _, f := range files {
		limit := int64(0)
		if maxBytes > 0 {
			if read >= maxBytes {
				return "", fmt.Errorf("digest of mapping %s: %w", path, &safefile.TooBigError{Size: read + 1, Limit: maxBytes})
			}
			limit = maxBytes - read
		}
		fh, st, err := safefile.Open(f, limit)
		if err != nil {
			return "", fmt.Errorf("digest of mapping %s: %w", path, err)
		}
		read += st.Size()
		io.WriteString(h, strconv.Quote(f)+"\n")
		var n int64
		if limit > 0 {
			n, err = io.Copy(h, io.LimitReader(fh, limit+1))
			if err == nil && n > limit {
				err = &safefile.TooBigError{Size: n, Limit: limit}
			}
		} else {
			_, err = io.Copy(h, fh)
		}
		fh.Close()
		if err != nil {
			return "", fmt.Errorf("digest of mapping %s: %w", path, err) // err names the file
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
