//go:build unix

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"mqa/checkpoints"
	"mqa/models"
	"mqa/train/rundata"
)

// quickTrain is a tiny LM run of steps steps into out, checkpointing every step.
func quickTrain(out, trainPath, validPath, testPath, steps string, extra ...string) []string {
	args := []string{"train", "-preset", "tiny", "-steps", steps, "-vocab", "280", "-seq", "8", "-batch", "2",
		"-train", trainPath, "-valid", validPath, "-test", testPath, "-ckpt-every", "1", "-eval-every", "2", "-keep", "0", "-out", out}
	return append(args, extra...)
}

// stepDirs lists the step-* entries of a run directory.
func stepDirs(t *testing.T, run string) []string {
	t.Helper()
	ents, err := os.ReadDir(run)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "step-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestRunDirectoryOwnership: a fresh run refuses a directory holding a user's files or an
// earlier run unless -force, never deletes the user's files, and leaves nothing behind
// when it refuses; a second writer is refused with the holder's pid.
func TestRunDirectoryOwnership(t *testing.T) {
	tr, va, te := smallText(t)
	dir := t.TempDir()

	mine := filepath.Join(dir, "mine")
	if err := os.MkdirAll(filepath.Join(mine, ".tmp-drafts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mine, "notes.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := capture(t, quickTrain(mine, tr, va, te, "2")...); code != 1 {
		t.Fatalf("a fresh run into a directory of user files exited %d, want 1", code)
	}
	if got := names(t, mine); !slices.Equal(got, []string{".tmp-drafts", "notes.txt"}) {
		t.Errorf("after refusing, the directory holds %v", got)
	}
	if code, _ := capture(t, quickTrain(mine, tr, va, te, "2", "-force")...); code != 0 {
		t.Fatalf("-force exited %d", code)
	}
	if b, err := os.ReadFile(filepath.Join(mine, "notes.txt")); err != nil || string(b) != "keep me" {
		t.Errorf("the user's file after a forced run: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(mine, ".tmp-drafts")); err != nil {
		t.Errorf("the user's .tmp-drafts after a forced run: %v", err)
	}

	run := filepath.Join(dir, "run")
	if code, _ := capture(t, quickTrain(run, tr, va, te, "4")...); code != 0 {
		t.Fatalf("first run exited %d", code)
	}
	if code, _ := capture(t, quickTrain(run, tr, va, te, "2", "-seed", "9")...); code != 1 {
		t.Fatalf("a fresh run into an earlier run's directory exited %d, want 1", code)
	}
	if got := stepDirs(t, run); len(got) != 4 {
		t.Errorf("the refused run changed the earlier run's checkpoints: %v", got)
	}
	if code, _ := capture(t, quickTrain(run, tr, va, te, "2", "-seed", "9", "-force")...); code != 0 {
		t.Fatalf("-force over an earlier run exited %d", code)
	}
	if got := stepDirs(t, run); !slices.Equal(got, []string{"step-00000001", "step-00000002"}) {
		t.Errorf("after -force the run holds %v, want only the new run's two checkpoints", got)
	}

	lock, err := checkpoints.LockRun(run)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	for _, args := range [][]string{quickTrain(run, tr, va, te, "2", "-force"), {"train", "-resume", run, "-steps", "3"}} {
		if code, _ := capture(t, args...); code != 1 {
			t.Errorf("%v while another writer holds the lock exited %d, want 1", args, code)
		}
	}
	if got := stepDirs(t, run); !slices.Equal(got, []string{"step-00000001", "step-00000002"}) {
		t.Errorf("refused writers changed the run: %v", got)
	}
}

// TestResumeMeansWhatItSays: -resume refuses flags that would change the model, data or
// optimisation, steps that do not extend the run, a finished run with nothing to do and a
// checkpoint in place of the run; it takes the flags it allows.
func TestResumeMeansWhatItSays(t *testing.T) {
	tr, va, te := smallText(t)
	run := filepath.Join(t.TempDir(), "run")
	if code, _ := capture(t, quickTrain(run, tr, va, te, "4")...); code != 0 {
		t.Fatalf("train exited %d", code)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"-preset", "small", "-attn", "mqa", "-lr", "5", "-seed", "99"}, 2},
		{[]string{"-train", va}, 2},
		{[]string{"-steps", "2"}, 2},
		{[]string{"-steps", "4"}, 2},
		{[]string{"-keep", "-1"}, 2},
		{nil, 0}, // finished: nothing to do
	} {
		if code, _ := capture(t, append([]string{"train", "-resume", run}, c.args...)...); code != c.code {
			t.Errorf("-resume with %v exited %d, want %d", c.args, code, c.code)
		}
	}
	ckpt := filepath.Join(run, "step-00000004")
	if code, _ := capture(t, "train", "-resume", ckpt, "-steps", "6"); code != 2 {
		t.Errorf("-resume of a checkpoint directory exited %d, want 2", code)
	}
	if got := names(t, ckpt); slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, "step-") }) {
		t.Errorf("checkpoints were nested inside %s: %v", ckpt, got)
	}
	if code, _ := capture(t, "train", "-resume", run, "-steps", "6", "-keep", "1", "-eval-every", "3"); code != 0 {
		t.Fatalf("extending the run exited %d", code)
	}
	if got := stepDirs(t, run); !slices.Contains(got, "step-00000006") || len(got) > 2 {
		t.Errorf("after extending with -keep 1 the run holds %v", got)
	}
}

// TestDataIdentity: run.json names the data by absolute path and SHA-256; eval reads only
// the split it scores (the training file may be gone), from any directory, and refuses a
// split whose file changed or moved, as a resume does.
func TestDataIdentity(t *testing.T) {
	tr, va, te := smallText(t)
	run := filepath.Join(t.TempDir(), "run")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// Train with relative paths, from the data's directory.
	if err := os.Chdir(filepath.Dir(tr)); err != nil {
		t.Fatal(err)
	}
	code, _ := capture(t, quickTrain(run, filepath.Base(tr), filepath.Base(va), filepath.Base(te), "2")...)
	if err := os.Chdir(wd); err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("train exited %d", code)
	}
	ckpt, err := checkpoints.Resolve(run)
	if err != nil {
		t.Fatal(err)
	}
	var ds rundata.Settings
	if err := checkpoints.ReadJSON(filepath.Join(ckpt, checkpoints.RunFile), &ds, 1<<20); err != nil {
		t.Fatal(err)
	}
	if ds.Train != tr || ds.TrainFile == nil || ds.TrainFile.Path != tr || len(ds.TrainFile.SHA256) != 64 || ds.TrainFile.Lines != 120 ||
		ds.ValidFile == nil || ds.ValidFile.Path != va || ds.TestFile == nil || ds.TestFile.Path != te {
		t.Fatalf("run.json data: %+v (train file %+v)", ds, ds.TrainFile)
	}
	if err := os.Remove(tr); err != nil {
		t.Fatal(err)
	}
	code, out := capture(t, "eval", "-ckpt", run, "-json")
	var r rundata.Score
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Data != va || r.Tokens == 0 {
		t.Fatalf("eval without the training file: exit %d, %q", code, out)
	}
	if err := os.WriteFile(va, []byte("a different validation text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := capture(t, "eval", "-ckpt", run); code != 1 {
		t.Errorf("eval of a changed validation file exited %d, want 1", code)
	}
	if err := os.Rename(te, te+".moved"); err != nil {
		t.Fatal(err)
	}
	if code, _ := capture(t, "eval", "-ckpt", run, "-split", "test"); code != 1 {
		t.Errorf("eval of a moved test file exited %d, want 1", code)
	}
	if code, _ := capture(t, "eval", "-ckpt", run, "-data", te+".moved"); code != 0 {
		t.Errorf("eval -data of the moved file exited %d, want 0", code)
	}
	if code, _ := capture(t, "train", "-resume", run, "-steps", "3"); code != 1 {
		t.Errorf("resuming without the training file exited %d, want 1", code)
	}
}

// TestHostileInputs: a FIFO in place of an input, an oversized beam or accumulation, a
// too-long line and non-finite weights get clear errors with exit status 1 (bad data) or 2
// (bad command line), without hanging or allocating without bound.
func TestHostileInputs(t *testing.T) {
	tr, va, te := smallText(t)
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if code, _ := capture(t, quickTrain(run, tr, va, te, "1")...); code != 0 {
		t.Fatalf("train exited %d", code)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"eval", "-ckpt", run, "-data", fifo}, 1},
		{[]string{"translate", "-ckpt", run, "-input", fifo}, 1},
		{[]string{"bleu", "-ref", fifo, "-hyp", va}, 1},
		{quickTrain(filepath.Join(dir, "r2"), fifo, va, te, "1"), 1},
		{[]string{"translate", "-ckpt", run, "-input", va, "-beam", "100000"}, 2},
		{[]string{"translate", "-ckpt", filepath.Join(dir, "missing"), "-input", va, "-output", filepath.Join(dir, "no", "such", "dir")}, 1},
		{quickTrain(filepath.Join(dir, "r3"), tr, va, te, "1", "-accum", "1000000000000000"), 2},
		{quickTrain(filepath.Join(dir, "r4"), tr, va, te, "1", "-vocab", "10"), 2},
		{quickTrain(filepath.Join(dir, "r5"), tr, va, te, "1", "-keep", "-2"), 2},
		{quickTrain(filepath.Join(dir, "r6"), tr, va, te, "1", "-batch", "100000000"), 2},
		{[]string{"train", "-task", "translate", "-max-tokens", "1000000000", "-out", filepath.Join(dir, "r7")}, 2},
	} {
		if code, _ := capture(t, c.args...); code != c.code {
			t.Errorf("mqa %s exited %d, want %d", strings.Join(c.args, " "), code, c.code)
		}
	}
	for _, r := range []string{"r3", "r4", "r5", "r6", "r7"} {
		if _, err := os.Stat(filepath.Join(dir, r)); err == nil {
			t.Errorf("a refused command line created %s", r)
		}
	}

	// tokenize -tok: a line over the limit is an error, not gigabytes.
	ckpt, err := checkpoints.Resolve(run)
	if err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, "long.txt")
	if err := os.WriteFile(long, []byte("ok\n"+strings.Repeat("a", 5<<20)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(long)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	oldIn := os.Stdin
	os.Stdin = in
	code, out := capture(t, "tokenize", "-tok", filepath.Join(ckpt, "tokenizer.json"))
	os.Stdin = oldIn
	if code != 1 || strings.Count(out, "\n") != 1 {
		t.Errorf("tokenize of a 5 MiB line: exit %d, %d lines out; want 1 and the first line only", code, strings.Count(out, "\n"))
	}

	// Non-finite weights are refused unless allowed; JSON cannot carry a NaN score.
	cfg, params, err := models.LoadModel(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range params.Names() {
		for i := range params.Get(name).Data().([]float32) {
			params.Get(name).Data().([]float32)[i] = float32(math.NaN())
		}
	}
	if err := models.SaveModel(ckpt, cfg, params); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"eval", "-ckpt", ckpt}, 1},
		{[]string{"eval", "-ckpt", ckpt, "-allow-nonfinite", "-json"}, 1},
		{[]string{"eval", "-ckpt", ckpt, "-allow-nonfinite"}, 0},
	} {
		if code, _ := capture(t, c.args...); code != c.code {
			t.Errorf("mqa %s exited %d, want %d", strings.Join(c.args, " "), code, c.code)
		}
	}
}

// names lists the entries of dir, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
