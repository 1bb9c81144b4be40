package bleu

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"mqa/checkpoints"
)

// ReadLines reads a hypothesis or reference file with one segment per
// line. Empty lines are kept as empty segments; only the line terminator
// ("\n" or "\r\n") is removed, other whitespace is left alone. A final line
// without a terminator is a segment; a terminator at the very end does not
// start another one. Invalid UTF-8 is an error naming file and line.
func ReadLines(path string) ([]string, error) {
	f, err := checkpoints.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadLinesFrom(f, path)
}

// ReadLinesFrom reads segments from r as [ReadLines] reads a file; name (a path, or
// "standard input") is what errors call the source.
func ReadLinesFrom(in io.Reader, name string) ([]string, error) {
	r := bufio.NewReader(in)
	var lines []string
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return lines, nil
			}
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if strings.HasSuffix(line, "\n") {
			line = line[:len(line)-1]
			line = strings.TrimSuffix(line, "\r")
		}
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("%s:%d: invalid UTF-8", name, n)
		}
		lines = append(lines, line)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return lines, nil
			}
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
}
