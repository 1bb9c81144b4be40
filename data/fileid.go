package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"

	"mqa/checkpoints"
)

// FileID identifies a data file by what it holds, so that a run can name the
// data it was really trained and evaluated on and notice when a file moved or
// changed.
type FileID struct {
	// Path is the file's absolute path when it was identified.
	Path string `json:"path"`
	// Lines is the number of newline-terminated lines, plus one for a last
	// line without a newline.
	Lines int `json:"lines"`
	// Bytes is the file's size.
	Bytes int64 `json:"bytes"`
	// SHA256 is the hex SHA-256 of the file's bytes as stored (compressed
	// bytes for a gzip file).
	SHA256 string `json:"sha256"`
}

// IdentifyFile reads the regular file at path once and returns its absolute
// path, line count, size and SHA-256.
func IdentifyFile(path string) (FileID, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return FileID{}, fmt.Errorf("data: %s: %w", path, err)
	}
	f, err := checkpoints.OpenRegular(abs)
	if err != nil {
		return FileID{}, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	id := FileID{Path: abs}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	last := byte('\n')
	for {
		n, err := f.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			id.Lines += bytes.Count(buf[:n], []byte{'\n'})
			id.Bytes += int64(n)
			last = buf[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return FileID{}, fmt.Errorf("data: %s: %w", path, err)
		}
	}
	if last != '\n' {
		id.Lines++
	}
	id.SHA256 = hex.EncodeToString(h.Sum(nil))
	return id, nil
}
