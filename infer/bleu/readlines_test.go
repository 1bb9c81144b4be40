package bleu

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadLines(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, content string
		want          []string
	}{
		{"empty", "", nil},
		{"one_no_newline", "hola", []string{"hola"}},
		{"one_newline", "hola\n", []string{"hola"}},
		{"empty_lines", "a\n\nb\n\n", []string{"a", "", "b", ""}},
		{"crlf", "a\r\n b \r\n\r\nc", []string{"a", " b ", "", "c"}},
		{"inner_cr_and_spaces", "a\rb\t \n  \n", []string{"a\rb\t ", "  "}},
		{"only_newline", "\n", []string{""}},
		{"unicode_separators", "a\u2028b\x1cc\u0085d\n", []string{"a\u2028b\x1cc\u0085d"}},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadLines(p)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestReadLinesLongLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "long")
	long := strings.Repeat("x", 1<<20)
	if err := os.WriteFile(p, []byte("a\n"+long+"\nb"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLines(p)
	if err != nil || len(got) != 3 || got[1] != long {
		t.Fatalf("long line: %d lines, err %v", len(got), err)
	}
}

func TestReadLinesInvalidUTF8(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(p, []byte("ok\nstill ok\nbad \xff byte\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadLines(p)
	if err == nil || !strings.Contains(err.Error(), p+":3:") {
		t.Fatalf("err = %v, want one naming %s:3", err, p)
	}
}

func TestReadLinesMissing(t *testing.T) {
	if _, err := ReadLines(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

// The committed parity sets must keep their sizes and their empty and
// very short hypotheses.
func TestParityData(t *testing.T) {
	for name, n := range map[string]int{"small": 5, "medium": 100, "large": 1000} {
		hyps, refs := readCorpus(t, name)
		if len(hyps) != n || len(refs) != n {
			t.Errorf("%s: %d hyps, %d refs, want %d", name, len(hyps), len(refs), n)
		}
		if hyps[n/2] != "" || len(strings.Fields(hyps[n-1])) != 1 {
			t.Errorf("%s: missing the empty or the one-word hypothesis", name)
		}
	}
}
