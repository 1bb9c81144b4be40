package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/train/rundata"
)

// capture runs the CLI in-process with its standard output redirected to a file and
// returns the exit status and what it printed.
func capture(t *testing.T, args ...string) (int, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdout
	os.Stdout = f
	code := run(args)
	os.Stdout = old
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// smallPairs writes a few hundred real sentence pairs as train/valid/test TSV files.
func smallPairs(t *testing.T) (trainPath, validPath, testPath string) {
	t.Helper()
	pairs, err := data.LoadTSV("", "bible.en-es", "valid")
	if err != nil {
		t.Fatal(err)
	}
	lines := make([]string, 240)
	for i, p := range pairs[:240] {
		lines[i] = p.Src + "\t" + p.Tgt
	}
	dir := t.TempDir()
	return writeLines(t, dir, "train.tsv", lines[:200]), writeLines(t, dir, "valid.tsv", lines[200:220]), writeLines(t, dir, "test.tsv", lines[220:240])
}

// TestCommandsOnTrainedCheckpoints trains a tiny LM and a tiny translation model and drives
// eval, generate, translate, bleu and tokenize on them, as a user would.
func TestCommandsOnTrainedCheckpoints(t *testing.T) {
	dir := t.TempDir()
	tr, va, te := smallText(t)
	lm := filepath.Join(dir, "lm")
	if code, _ := capture(t, trainArgs(lm, tr, va, te, "6")...); code != 0 {
		t.Fatalf("train lm exited %d", code)
	}
	mtTrain, mtValid, mtTest := smallPairs(t)
	mt := filepath.Join(dir, "mt")
	if code, _ := capture(t, "train", "-task", "translate", "-attn", "mqa", "-steps", "4", "-vocab", "300", "-separate-vocab",
		"-train", mtTrain, "-valid", mtValid, "-test", mtTest, "-out", mt); code != 0 {
		t.Fatalf("train translate exited %d", code)
	}
	// Separate vocabularies: the checkpoint carries the source tokenizer too.
	ckpt, err := checkpoints.Resolve(mt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ckpt, checkpoints.SrcTokenizerFile)); err != nil {
		t.Fatalf("no source tokenizer with -separate-vocab: %v", err)
	}

	t.Run("eval json", func(t *testing.T) {
		code, out := capture(t, "eval", "-ckpt", lm, "-split", "test", "-json")
		var r rundata.Score
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("exit %d, output %q", code, out)
		}
		if r.Tokens == 0 || !(r.NLL > 0) || !(r.PPL > 1) || r.Words == 0 || !(r.WordPPL > r.PPL) {
			t.Errorf("eval result %+v", r)
		}
	})
	t.Run("generate", func(t *testing.T) {
		code, out := capture(t, "generate", "-ckpt", lm, "-prompt", "It was", "-max", "5", "-temperature", "0.8", "-seed", "3")
		code2, out2 := capture(t, "generate", "-ckpt", lm, "-prompt", "It was", "-max", "5", "-temperature", "0.8", "-seed", "3")
		if code != 0 || code2 != 0 || out != out2 {
			t.Errorf("generate: exits %d/%d, seeded outputs %q and %q differ", code, code2, out, out2)
		}
		if code, _ := capture(t, "generate", "-ckpt", mt, "-prompt", "x"); code != 1 {
			t.Errorf("generate on a translation model exited %d, want 1", code)
		}
		long := strings.Repeat("word ", 400)
		if code, _ := capture(t, "generate", "-ckpt", lm, "-prompt", long); code != 1 {
			t.Errorf("a prompt longer than max_len exited %d, want 1", code)
		}
	})
	t.Run("translate and bleu", func(t *testing.T) {
		input := filepath.Join(dir, "src.txt")
		lines := []string{"In the beginning God created the heavens.", "", "Jesus wept."}
		if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		hyp := filepath.Join(dir, "hyp.txt")
		if code, _ := capture(t, "translate", "-ckpt", mt, "-input", input, "-output", hyp, "-beam", "2", "-max", "8"); code != 0 {
			t.Fatalf("translate exited %d", code)
		}
		got, err := os.ReadFile(hyp)
		if err != nil {
			t.Fatal(err)
		}
		out := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
		if len(out) != len(lines) || out[1] != "" {
			t.Fatalf("translations %q: want %d lines with the empty one kept empty", out, len(lines))
		}
		code, js := capture(t, "bleu", "-ref", input, "-hyp", hyp, "-json")
		var b map[string]any
		if code != 0 || json.Unmarshal([]byte(js), &b) != nil || b["bleu_signature"] == nil {
			t.Errorf("bleu: exit %d, %q", code, js)
		}
		if code, _ := capture(t, "translate", "-ckpt", mt, "-input", input, "-beam", "0"); code != 2 {
			t.Errorf("-beam 0 exited %d, want 2", code)
		}
		if code, _ := capture(t, "translate", "-ckpt", lm, "-input", input); code != 1 {
			t.Errorf("translate with an LM exited %d, want 1", code)
		}
	})
	t.Run("tokenize", func(t *testing.T) {
		tok := filepath.Join(dir, "tok.json")
		if code, _ := capture(t, "tokenize", "-train", tr, "-vocab", "280", "-out", tok); code != 0 {
			t.Fatalf("tokenize -train exited %d", code)
		}
		in, err := os.Open(tr)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		oldIn := os.Stdin
		os.Stdin = in
		code, ids := capture(t, "tokenize", "-tok", tok)
		os.Stdin = oldIn
		if code != 0 || len(strings.Fields(ids)) == 0 {
			t.Errorf("tokenize -tok: exit %d, %d ids", code, len(strings.Fields(ids)))
		}
		if code, _ := capture(t, "tokenize", "-train", tr, "-vocab", "10", "-out", tok); code != 2 {
			t.Errorf("vocab 10 exited %d, want 2", code)
		}
	})
	t.Run("bad command lines", func(t *testing.T) {
		for _, args := range [][]string{
			{"train", "-attn", "gqa:3"}, {"train", "-preset", "huge"}, {"train", "-task", "tagging"},
			{"eval"}, {"eval", "-ckpt", lm, "-split", "dev"}, {"bogus"}, {"bench", "nope"}, {"train", "-steps", "x"},
			{"train", "-seq", "100000"}, {"train", "-batch", "-1"},
		} {
			if code, _ := capture(t, args...); code != 2 {
				t.Errorf("mqa %s exited %d, want 2", strings.Join(args, " "), code)
			}
		}
		if code, _ := capture(t, "eval", "-ckpt", filepath.Join(dir, "missing")); code != 1 {
			t.Errorf("eval of a missing checkpoint exited %d, want 1", code)
		}
	})
}
