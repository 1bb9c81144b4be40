package data

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCorpora(t *testing.T) {
	want := []string{"lm-en", "bible.en-es", "lohelp.en-de"}
	if got := Corpora(); !slices.Equal(got, want) {
		t.Fatalf("Corpora() = %q, want %q", got, want)
	}
}

func TestOpenEmbeddedErrors(t *testing.T) {
	tests := []struct {
		name, split, wantErr string
	}{
		{"nope", "train", "lm-en, bible.en-es, lohelp.en-de"},
		{"lm-en", "dev", "train, valid, test"},
		{"", "", "unknown embedded corpus"},
	}
	for _, tc := range tests {
		rc, err := OpenEmbedded(tc.name, tc.split)
		if err == nil {
			rc.Close()
			t.Errorf("OpenEmbedded(%q, %q): no error", tc.name, tc.split)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("OpenEmbedded(%q, %q) error %q, want it to contain %q", tc.name, tc.split, err, tc.wantErr)
		}
	}
}

// TestEmbeddedMatchesReadme checks the line counts the corpus README gives.
func TestEmbeddedMatchesReadme(t *testing.T) {
	tests := []struct {
		name, split string
		lines       int
	}{
		{"lm-en", "train", 10502},
		{"lm-en", "valid", 1020},
		{"lm-en", "test", 1007},
		{"bible.en-es", "train", 27312},
		{"bible.en-es", "valid", 900},
		{"bible.en-es", "test", 1862},
		{"lohelp.en-de", "train", 28985},
		{"lohelp.en-de", "valid", 1285},
		{"lohelp.en-de", "test", 3146},
	}
	for _, tc := range tests {
		var n int
		if tc.name == "lm-en" {
			docs, err := LoadText("", tc.name, tc.split)
			if err != nil {
				t.Fatal(err)
			}
			n = len(docs)
		} else {
			pairs, err := LoadTSV("", tc.name, tc.split)
			if err != nil {
				t.Fatal(err)
			}
			n = len(pairs)
		}
		if n != tc.lines {
			t.Errorf("%s.%s: %d lines, want %d", tc.name, tc.split, n, tc.lines)
		}
	}
}

func TestLoadKindMismatch(t *testing.T) {
	if _, err := LoadText("", "bible.en-es", "train"); err == nil || !strings.Contains(err.Error(), "not text") {
		t.Errorf("LoadText on a TSV corpus: error %v", err)
	}
	if _, err := LoadTSV("", "lm-en", "train"); err == nil || !strings.Contains(err.Error(), "not TSV") {
		t.Errorf("LoadTSV on a text corpus: error %v", err)
	}
}

func TestLoadFromPath(t *testing.T) {
	dir := t.TempDir()
	txt := filepath.Join(dir, "a.txt")
	tsv := filepath.Join(dir, "b.tsv")
	bad := filepath.Join(dir, "bad.tsv")
	os.WriteFile(txt, []byte("one\n\ntwo\n"), 0o644)
	os.WriteFile(tsv, []byte("a\tb\n"), 0o644)
	os.WriteFile(bad, []byte("a\tb\nc d\n"), 0o644)

	docs, err := LoadText(txt, "ignored", "ignored")
	if err != nil || !slices.Equal(docs, []string{"one", "two"}) {
		t.Errorf("LoadText(path) = %q, %v", docs, err)
	}
	pairs, err := LoadTSV(tsv, "", "")
	if err != nil || !slices.Equal(pairs, []Pair{{"a", "b"}}) {
		t.Errorf("LoadTSV(path) = %q, %v", pairs, err)
	}
	if _, err := LoadTSV(bad, "", ""); err == nil || !strings.Contains(err.Error(), bad+":2: no tab") {
		t.Errorf("LoadTSV(bad) error %v, want %s:2: no tab", err, bad)
	}
	missing := filepath.Join(dir, "missing.txt")
	if _, err := LoadText(missing, "", ""); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("LoadText(missing) error %v, want it to name the path", err)
	}
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte("\n \n"), 0o644)
	if _, err := LoadText(empty, "", ""); err == nil || !strings.Contains(err.Error(), "no documents") {
		t.Errorf("LoadText(empty) error %v", err)
	}
}

func TestReadTextLines(t *testing.T) {
	long := strings.Repeat("x", 200_000) // longer than bufio.Scanner's default limit
	tests := []readCase[string]{
		{"simple", "a b\nc\n", []string{"a b", "c"}, ""},
		{"no final newline", "a\nb", []string{"a", "b"}, ""},
		{"blank lines skipped", "\n\na\n  \n\t\nb\n\n", []string{"a", "b"}, ""},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}, ""},
		{"bom", "\xef\xbb\xbfa\nb\n", []string{"a", "b"}, ""},
		{"empty", "", nil, ""},
		{"long line", long + "\nz\n", []string{long, "z"}, ""},
		{"invalid utf8", "ok\n\nbad \xff\n", nil, "in.txt:3: invalid UTF-8"},
		{"surrogate", "\xed\xa0\x80\n", nil, "in.txt:1: invalid UTF-8"},
		{"too long", strings.Repeat("y", MaxLineBytes+1), nil, "in.txt:1: line longer than"},
	}
	testRead(t, ReadTextLines, "in.txt", tests)
}

func TestReadTSV(t *testing.T) {
	tests := []readCase[Pair]{
		{"simple", "a\tb\nc d\te f\n", []Pair{{"a", "b"}, {"c d", "e f"}}, ""},
		{"blank and crlf", "\na\tb\r\n\n", []Pair{{"a", "b"}}, ""},
		{"no final newline", "a\tb", []Pair{{"a", "b"}}, ""},
		{"no tab", "a\tb\nab\n", nil, "p.tsv:2: no tab"},
		{"two tabs", "a\tb\tc\n", nil, "p.tsv:1: 2 tabs"},
		{"empty source", "\tb\n", nil, "p.tsv:1: empty source"},
		{"blank target", "a\t  \n", nil, "p.tsv:1: empty target"},
		{"invalid utf8", "a\tb\n\na\t\xc3\n", nil, "p.tsv:3: invalid UTF-8"},
		{"empty file", "", nil, "p.tsv: no pairs"},
		{"only blank lines", "\n\n \n", nil, "p.tsv: no pairs"},
	}
	testRead(t, ReadTSV, "p.tsv", tests)
}

// readCase is a case for testRead: reading in gives want, or an error that
// contains wantErr.
type readCase[T any] struct {
	name, in string
	want     []T
	wantErr  string
}

// testRead runs read on each case, with source as the source name.
func testRead[T comparable](t *testing.T, read func(io.Reader, string) ([]T, error), source string, tests []readCase[T]) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(strings.NewReader(tc.in), source)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// errReader fails after returning its data.
type errReader struct{ data string }

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadErrorHasLine(t *testing.T) {
	_, err := ReadTextLines(&errReader{data: "a\nb\nc"}, "r.txt")
	if err == nil || !strings.Contains(err.Error(), "r.txt:3: read") {
		t.Fatalf("error %v, want r.txt:3: read", err)
	}
}

// gzipped returns content compressed with gzip.
func gzipped(t *testing.T, content string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestLoadGzipAndParallelFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, content []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	textGz := write("docs.txt.gz", gzipped(t, "one doc\n\ntwo doc\n"))
	tsvGz := write("pairs.data", gzipped(t, "a b\tx y\nc\tz\n")) // gzip told by its bytes, not its name
	en := write("train.en", []byte("Hello there.\n\nGood night.\nYes\n"))
	fr := write("train.fr.gz", gzipped(t, "Bonjour.\n\nBonne nuit.\nOui\n"))
	short := write("short.fr", []byte("Bonjour.\n\nBonne nuit.\n"))
	oneSided := write("onesided.fr", []byte("Bonjour.\nx\nBonne nuit.\nOui\n"))

	docs, err := LoadText(textGz, "", "")
	if err != nil || !slices.Equal(docs, []string{"one doc", "two doc"}) {
		t.Errorf("LoadText(gzip) = %q, %v", docs, err)
	}
	pairs, err := LoadTSV(tsvGz, "", "")
	if err != nil || !slices.Equal(pairs, []Pair{{"a b", "x y"}, {"c", "z"}}) {
		t.Errorf("LoadTSV(gzip) = %q, %v", pairs, err)
	}
	pairs, err = LoadTSV(en+","+fr, "", "")
	want := []Pair{{"Hello there.", "Bonjour."}, {"Good night.", "Bonne nuit."}, {"Yes", "Oui"}}
	if err != nil || !slices.Equal(pairs, want) {
		t.Errorf("LoadTSV(en,fr) = %q, %v; want %q", pairs, err, want)
	}
	for _, tc := range []struct{ path, want string }{
		{en + "," + short, en + " has 4 lines but " + short + " has 3"},
		{en + "," + oneSided, en + ":2: empty source line, but " + oneSided + ":2 is not empty"},
		{en + "," + filepath.Join(dir, "missing.fr"), "missing.fr"},
	} {
		if _, err := LoadTSV(tc.path, "", ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadTSV(%s) error %v, want it to say %q", tc.path, err, tc.want)
		}
	}
	if src, tgt, ok := SplitPair(en + "," + fr); !ok || src != en || tgt != fr {
		t.Errorf("SplitPair = %q, %q, %v", src, tgt, ok)
	}
	if _, _, ok := SplitPair(en); ok {
		t.Errorf("SplitPair(%s) is a pair", en)
	}
	comma := write("a,b.tsv", []byte("a\tb\n")) // an existing file whose name has a comma is one file
	if pairs, err := LoadTSV(comma, "", ""); err != nil || len(pairs) != 1 {
		t.Errorf("LoadTSV(%s) = %q, %v", comma, pairs, err)
	}
}
