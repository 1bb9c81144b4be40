package data

import (
	"bufio"
	"errors"
	"io"
	"strconv"
)

// EncodeLines writes the ids of each line of r as a line of space-separated numbers to w
// (without the line end, "\n" or "\r\n", and a UTF-8 byte order mark; a last line without
// an end is encoded too). A line longer than MaxLineBytes is an error naming source and the
// line's number (the lines before it are written); no more than that is held in memory.
// An error writing w is returned.
func (t *Tokenizer) EncodeLines(r io.Reader, source string, w io.Writer) error {
	lr := newLineReader(r, source)
	bw := bufio.NewWriter(w)
	var out []byte
	for {
		line, err := lr.next()
		if err == io.EOF {
			return bw.Flush()
		}
		if err != nil { // the lines before the bad one are out, as a stream would have them
			return errors.Join(err, bw.Flush())
		}
		out = out[:0]
		for i, id := range t.Encode(string(line)) {
			if i > 0 {
				out = append(out, ' ')
			}
			out = strconv.AppendInt(out, int64(id), 10)
		}
		if _, err := bw.Write(append(out, '\n')); err != nil {
			return err
		}
	}
}
