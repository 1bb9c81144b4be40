package data

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// EncodeLines writes the ids of each line of r as a line of space-separated numbers to w
// (without the line end, "\n" or "\r\n"; a last line without one is encoded too). A line
// longer than MaxLineBytes is an error naming source and the line's number; no more than
// that is held in memory.
func (t *Tokenizer) EncodeLines(r io.Reader, source string, w io.Writer) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	var line []byte
	for n := 1; ; n++ {
		line = line[:0]
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if len(line)+len(chunk) > MaxLineBytes+2 {
				return fmt.Errorf("%s:%d: line longer than %d bytes", source, n, MaxLineBytes)
			}
			line = append(line, chunk...)
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if len(line) > 0 {
			text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
			if len(text) > MaxLineBytes {
				return fmt.Errorf("%s:%d: line longer than %d bytes", source, n, MaxLineBytes)
			}
			ids := t.Encode(text)
			parts := make([]string, len(ids))
			for i, id := range ids {
				parts[i] = strconv.Itoa(id)
			}
			fmt.Fprintln(bw, strings.Join(parts, " "))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", source, err)
		}
	}
}
