package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mqa/infer/study"
)

// withStdio runs f with standard input reading stdin and standard error going to a file (not
// a terminal), and returns what f wrote to standard error.
func withStdio(t *testing.T, stdin string, f func()) string {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "stdin")
	if err := os.WriteFile(in, []byte(stdin), 0o644); err != nil {
		t.Fatal(err)
	}
	inf, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer inf.Close()
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	oldIn, oldErr := os.Stdin, os.Stderr
	os.Stdin, os.Stderr = inf, errf
	f()
	os.Stdin, os.Stderr = oldIn, oldErr
	if _, err := errf.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(errf)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStdinStdout drives translate, bleu and generate through standard input and output, as
// in a shell pipeline, and checks that progress on a standard error that is not a terminal
// has no carriage returns (no progress bar).
func TestStdinStdout(t *testing.T) {
	dir := t.TempDir()
	mtTrain, mtValid, mtTest := smallPairs(t)
	mt := filepath.Join(dir, "mt")
	var code int
	stderr := withStdio(t, "", func() {
		code, _ = capture(t, "train", "-task", "translate", "-steps", "3", "-vocab", "300", "-train", mtTrain, "-valid", mtValid, "-test", mtTest, "-out", mt)
	})
	if code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	if strings.ContainsRune(stderr, '\r') || !strings.Contains(stderr, "3/3 steps (100 %)") {
		t.Errorf("train's standard error, not a terminal, should hold plain progress lines:\n%q", stderr)
	}
	quiet := withStdio(t, "", func() {
		code, _ = capture(t, "train", "-task", "translate", "-steps", "2", "-vocab", "300", "-train", mtTrain, "-valid", mtValid, "-test", mtTest,
			"-out", filepath.Join(dir, "mt-quiet"), "-quiet")
	})
	if code != 0 || strings.Contains(quiet, "steps (") {
		t.Errorf("train -quiet: exit %d, progress %q", code, quiet)
	}
	lm := filepath.Join(dir, "lm")
	tr, va, te := smallText(t)
	withStdio(t, "", func() { code, _ = capture(t, trainArgs(lm, tr, va, te, "3")...) })
	if code != 0 {
		t.Fatalf("train lm exited %d", code)
	}

	sources := "In the beginning God created the heavens.\n\nJesus wept.\n"
	var fromStdin, fromDash, fromFile string
	stderr = withStdio(t, sources, func() { code, fromStdin = capture(t, "translate", "-ckpt", mt, "-beam", "1", "-max", "6") })
	if code != 0 || strings.ContainsRune(stderr, '\r') {
		t.Fatalf("translate from standard input: exit %d, standard error %q", code, stderr)
	}
	withStdio(t, sources, func() {
		code, fromDash = capture(t, "translate", "-ckpt", mt, "-input", "-", "-beam", "1", "-max", "6")
	})
	src := writeLines(t, dir, "src.txt", strings.Split(strings.TrimSuffix(sources, "\n"), "\n"))
	_, fromFile = capture(t, "translate", "-ckpt", mt, "-input", src, "-beam", "1", "-max", "6")
	lines := strings.Split(strings.TrimSuffix(fromStdin, "\n"), "\n")
	if len(lines) != 3 || lines[1] != "" || fromStdin != fromDash || fromStdin != fromFile {
		t.Errorf("translations from standard input %q, from -input - %q, from the file %q: want the same 3 lines, the second empty", fromStdin, fromDash, fromFile)
	}

	hyp := writeLines(t, dir, "hyp.txt", lines)
	var viaStdin, viaFile string
	withStdio(t, fromStdin, func() { code, viaStdin = capture(t, "bleu", "-ref", src, "-json") })
	_, viaFile = capture(t, "bleu", "-ref", src, "-hyp", hyp, "-json")
	var b map[string]any
	if code != 0 || viaStdin != viaFile || json.Unmarshal([]byte(viaStdin), &b) != nil {
		t.Errorf("bleu with hypotheses on standard input: exit %d, %q; from the file %q", code, viaStdin, viaFile)
	}

	var gen string
	withStdio(t, "It was\nThe\n", func() {
		code, gen = capture(t, "generate", "-ckpt", lm, "-n", "2", "-max", "4", "-temperature", "1", "-seed", "3")
	})
	got := strings.Split(strings.TrimSuffix(gen, "\n"), "\n")
	if code != 0 || len(got) != 4 {
		t.Fatalf("generate from standard input: exit %d, %d lines %q, want 2 prompts × 2 samples", code, len(got), got)
	}
	_, first := capture(t, "generate", "-ckpt", lm, "-prompt", "It was", "-max", "4", "-temperature", "1", "-seed", "3")
	_, second := capture(t, "generate", "-ckpt", lm, "-prompt", "It was", "-max", "4", "-temperature", "1", "-seed", "4")
	if got[0]+"\n" != first || got[1]+"\n" != second {
		t.Errorf("samples of the first prompt %q, %q; want seed 3's %q and seed 4's %q", got[0], got[1], first, second)
	}
}

// TestHelpAndVersion: -h and mqa help print to standard output and exit 0; mqa version
// prints the build.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"translate", "-h"}, {"compare", "-h"}, {"help"}, {"help", "bleu"}, {"bench", "-h"}} {
		var code int
		var out string
		stderr := withStdio(t, "", func() { code, out = capture(t, args...) })
		if code != 0 || !strings.Contains(out, "Usage") || stderr != "" {
			t.Errorf("mqa %s: exit %d, standard output %q, standard error %q", strings.Join(args, " "), code, out, stderr)
		}
	}
	code, out := capture(t, "version", "-json")
	var v study.BuildInfo
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Module == "" || v.Go == "" {
		t.Errorf("mqa version -json: exit %d, %q", code, out)
	}
}
