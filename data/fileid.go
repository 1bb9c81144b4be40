package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
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
	// line without a newline, of the text (decompressed for a gzip file).
	Lines int `json:"lines"`
	// Bytes is the file's size.
	Bytes int64 `json:"bytes"`
	// SHA256 is the hex SHA-256 of the file's bytes as stored (compressed
	// bytes for a gzip file).
	SHA256 string `json:"sha256"`
}

// IdentifyFile reads the regular file at path once and returns its absolute
// path, line count (of the decompressed text for a gzip file), size and
// SHA-256.
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
	st, err := f.Stat()
	if err != nil {
		return FileID{}, fmt.Errorf("data: %w", err)
	}
	id := FileID{Path: abs, Bytes: st.Size()}
	h := sha256.New()
	raw := bufio.NewReaderSize(io.TeeReader(f, h), 1<<20)
	var text io.Reader = raw
	if head, _ := raw.Peek(len(gzipMagic)); bytes.Equal(head, gzipMagic) {
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return FileID{}, fmt.Errorf("data: %s: gzip: %w", path, err)
		}
		defer zr.Close()
		text = zr
	}
	if id.Lines, err = countLines(text); err != nil {
		return FileID{}, fmt.Errorf("data: %s: %w", path, err)
	}
	// The hash covers every stored byte, also any the decompressor left unread.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return FileID{}, fmt.Errorf("data: %s: %w", path, err)
	}
	id.SHA256 = hex.EncodeToString(h.Sum(nil))
	return id, nil
}

// countLines counts newline-terminated lines, plus one for a last line without a newline.
func countLines(r io.Reader) (int, error) {
	buf := make([]byte, 1<<20)
	lines, last := 0, byte('\n')
	for {
		n, err := r.Read(buf)
		if n > 0 {
			lines += bytes.Count(buf[:n], []byte{'\n'})
			last = buf[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last != '\n' {
		lines++
	}
	return lines, nil
}
