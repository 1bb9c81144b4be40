package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/infer/study"
)

// writeGzip writes lines, gzip-compressed, to dir/name and returns its path.
func writeGzip(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sha256Of is the hex SHA-256 of a file's bytes.
func sha256Of(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestCompareOnYourFiles runs compare on files written here: for translation a gzip TSV,
// a source/target file pair and a plain TSV; for an LM plain text and gzip text. The report
// and results.json must name every file with its line count and SHA-256.
func TestCompareOnYourFiles(t *testing.T) {
	pairs, err := data.LoadTSV("", "bible.en-es", "valid")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var tsv, src, tgt []string
	for _, p := range pairs[:150] {
		tsv, src, tgt = append(tsv, p.Src+"\t"+p.Tgt), append(src, p.Src), append(tgt, p.Tgt)
	}
	mtTrain := writeGzip(t, dir, "train.tsv.gz", tsv[:120])
	mtValidSrc, mtValidTgt := writeLines(t, dir, "valid.en", src[120:135]), writeLines(t, dir, "valid.es", tgt[120:135])
	mtTest := writeLines(t, dir, "test.tsv", tsv[135:150])
	docs, err := data.LoadText("", "lm-en", "valid")
	if err != nil {
		t.Fatal(err)
	}
	lmTrain, lmValid, lmTest := writeLines(t, dir, "train.txt", docs[:60]), writeGzip(t, dir, "valid.txt.gz", docs[60:66]), writeLines(t, dir, "test.txt", docs[66:72])

	for _, tc := range []struct {
		task               string
		train, valid, test string
		files              map[string]int // path: lines
	}{
		{"translate", mtTrain, mtValidSrc + "," + mtValidTgt, mtTest, map[string]int{mtTrain: 120, mtValidSrc: 15, mtValidTgt: 15, mtTest: 15}},
		{"lm", lmTrain, lmValid, lmTest, map[string]int{lmTrain: 60, lmValid: 6, lmTest: 6}},
	} {
		t.Run(tc.task, func(t *testing.T) {
			out := t.TempDir()
			args := []string{"compare", "-tasks", tc.task, "-attn", "mha,mqa", "-steps", "2", "-bleu-lines", "3", "-decode-batch", "2",
				"-timing-reps", "1", "-train", tc.train, "-valid", tc.valid, "-test", tc.test, "-out", out, "-quiet"}
			if code, _ := capture(t, args...); code != 0 {
				t.Fatalf("mqa %s exited %d", strings.Join(args, " "), code)
			}
			var res study.Results
			if err := checkpoints.ReadJSON(filepath.Join(out, "results.json"), &res, 1<<26); err != nil {
				t.Fatal(err)
			}
			report, err := os.ReadFile(filepath.Join(out, "report.md"))
			if err != nil {
				t.Fatal(err)
			}
			named := map[string]bool{}
			for _, sf := range res.DataFiles {
				for _, f := range sf.Files {
					named[f.Path] = true
					if lines, ok := tc.files[f.Path]; !ok || f.Lines != lines || f.SHA256 != sha256Of(t, f.Path) {
						t.Errorf("%s %s: %+v, want %d lines and the file's SHA-256", sf.Task, sf.Split, f, lines)
					}
					if !strings.Contains(string(report), "`"+f.Path+"`") || !strings.Contains(string(report), f.SHA256) {
						t.Errorf("report.md does not name %s with its SHA-256", f.Path)
					}
				}
			}
			if len(named) != len(tc.files) {
				t.Errorf("results.json names %v, want %d files", named, len(tc.files))
			}
		})
	}
}

// TestCompareFileFlags refuses partial or ambiguous file flags with exit status 2.
func TestCompareFileFlags(t *testing.T) {
	for _, args := range [][]string{
		{"compare", "-tasks", "lm", "-train", "a.txt"},
		{"compare", "-train", "a.txt", "-valid", "b.txt", "-test", "c.txt"},
	} {
		if code, _ := capture(t, args...); code != 2 {
			t.Errorf("mqa %s exited %d, want 2", strings.Join(args, " "), code)
		}
	}
}
