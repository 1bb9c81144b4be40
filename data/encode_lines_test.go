package data

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// idLine writes ids as EncodeLines does.
func idLine(ids []int) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	return strings.Join(parts, " ") + "\n"
}

func TestEncodeLines(t *testing.T) {
	tok := sampleTokenizer(t)
	var out bytes.Buffer
	if err := tok.EncodeLines(strings.NewReader("the cat\r\n\nsat down"), "in.txt", &out); err != nil {
		t.Fatal(err)
	}
	want := idLine(tok.Encode("the cat")) + "\n" + idLine(tok.Encode("sat down"))
	if out.String() != want {
		t.Errorf("EncodeLines wrote %q, want %q", out.String(), want)
	}
	out.Reset()
	if err := tok.EncodeLines(strings.NewReader("\xef\xbb\xbfthe cat\n"), "bom.txt", &out); err != nil || out.String() != idLine(tok.Encode("the cat")) {
		t.Errorf("a first line with a byte order mark: %q (%v), want %q", out.String(), err, idLine(tok.Encode("the cat")))
	}
	full := errors.New("disk full")
	if err := tok.EncodeLines(strings.NewReader("the cat\n"), "in.txt", failingWriter{full}); !errors.Is(err, full) {
		t.Errorf("a failing writer: %v, want its error", err)
	}
	long := "ok\n" + strings.Repeat("a", MaxLineBytes+1) + "\n"
	err := tok.EncodeLines(strings.NewReader(long), "in.txt", &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "in.txt:2: line longer than ") {
		t.Errorf("a line over MaxLineBytes: %v, want an error naming in.txt:2", err)
	}
}

// failingWriter fails every write with its error.
type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
