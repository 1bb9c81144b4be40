package data

import (
	"bytes"
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
	long := "ok\n" + strings.Repeat("a", MaxLineBytes+1) + "\n"
	err := tok.EncodeLines(strings.NewReader(long), "in.txt", &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "in.txt:2: line longer than ") {
		t.Errorf("a line over MaxLineBytes: %v, want an error naming in.txt:2", err)
	}
}
