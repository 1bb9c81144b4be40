package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// names lists a directory's entries.
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

func TestOpenFresh(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine")
	if err := os.MkdirAll(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mine, "notes.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if _, err := openFresh(mine, false, &log); err == nil || !strings.Contains(err.Error(), "not an mqa run directory (it holds notes.txt)") {
		t.Errorf("a directory of user files: %v, want a refusal naming notes.txt", err)
	}
	if got := names(t, mine); !slices.Equal(got, []string{"notes.txt"}) {
		t.Errorf("after the refusal the directory holds %v, want only notes.txt", got)
	}
	lock, err := openFresh(mine, true, &log)
	if err != nil {
		t.Fatalf("-force: %v", err)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	// What an interrupted run left before its first checkpoint is cleaned, and said.
	fresh := filepath.Join(dir, "fresh")
	if err := os.MkdirAll(filepath.Join(fresh, ".tmp-step-00000001-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err = openFresh(fresh, false, &log)
	if err != nil {
		t.Fatalf("a directory an interrupted run left: %v", err)
	}
	defer lock.Unlock()
	if got := names(t, fresh); !slices.Equal(got, []string{checkpoints.LockFile}) {
		t.Errorf("after cleaning the directory holds %v, want only the lock", got)
	}
	if !strings.Contains(log.String(), "removed what an interrupted run left in "+fresh) {
		t.Errorf("log %q does not say what was removed", log.String())
	}
}

func TestScheduleNote(t *testing.T) {
	for _, c := range []struct {
		s    train.Schedule
		want string
	}{
		{train.Schedule{Kind: train.ScheduleCosine, Warmup: 2, Peak: 0.01, Total: 10, Min: 0.001},
			"the learning-rate schedule is kept (warmup 2 steps, peak 0.01): its cosine decay ends at step 10, so every later step trains at its floor 0.001"},
		{train.Schedule{Kind: train.ScheduleCosine, Warmup: 2, Peak: 0.01, Total: 10},
			"the learning-rate schedule is kept (warmup 2 steps, peak 0.01): its cosine decay ends at step 10, so every later step trains at its floor 0, which leaves the weights unchanged (the run had -min-lr 0)"},
		{train.Schedule{Kind: train.ScheduleInvSqrt, Warmup: 3, Peak: 0.002},
			"the learning-rate schedule is kept (warmup 3 steps, peak 0.002): its inverse-square-root decay goes on past step 8 as it would have"},
		{train.Schedule{Kind: train.ScheduleConstant, Warmup: 1, Peak: 0.5},
			"the learning-rate schedule is kept (warmup 1 steps, peak 0.5): the learning rate stays 0.5"},
	} {
		if got := scheduleNote(c.s, 8); got != c.want {
			t.Errorf("scheduleNote(%+v)\n got %q\nwant %q", c.s, got, c.want)
		}
	}
}

// smallText writes a tiny LM corpus (lines of the embedded corpus) and returns its files.
func smallText(t *testing.T) (trainPath, validPath, testPath string) {
	t.Helper()
	lines, err := data.LoadText("", "lm-en", "valid")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, lines []string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("train.txt", lines[:120]), write("valid.txt", lines[120:130]), write("test.txt", lines[130:140])
}

// TestNewAndResume trains a tiny LM 3 steps, then resumes it: to the same total there is
// nothing to do, fewer steps are refused, more steps extend the run.
func TestNewAndResume(t *testing.T) {
	tr, va, te := smallText(t)
	out := filepath.Join(t.TempDir(), "run")
	var log bytes.Buffer
	d := &rundata.Data{Settings: rundata.Settings{Task: models.TaskLM, Train: tr, Valid: va, Test: te, Vocab: 280, SeqLen: 8, Batch: 2,
		Seed: 1, EvalEvery: 2, CkptEvery: 1, Keep: 0, EvalBatches: 2}, Quiet: true}
	s := Spec{Out: out, Data: d, Settings: train.DefaultSettings(3), Device: "cpu", Ranks: 1, Preset: "tiny", Log: &log,
		Model: func(vocab, _ int) (models.Config, error) { return models.Preset("tiny", models.TaskLM, vocab) }}
	j, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	err = j.Train(context.Background())
	j.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mqa train: lm tiny, mha attention", "3 steps, vocab ", "mqa train: 3 steps, final loss "} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log %q lacks %q", log.String(), want)
		}
	}
	log.Reset()
	if j, err := Resume(ResumeSpec{Dir: out, Device: "cpu", Ranks: 1, Log: &log}); j != nil || err != nil || !strings.Contains(log.String(), "already finished all its 3 steps") {
		t.Errorf("resuming a finished run: job %v, %v, log %q", j, err, log.String())
	}
	_, err = Resume(ResumeSpec{Dir: out, Device: "cpu", Ranks: 1, Steps: 2, Log: &log})
	if want := "-steps 2: the run in " + out + " is at step 3;"; !errors.Is(err, train.ErrStepsTooFew) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("resuming to fewer steps: %v, want train.ErrStepsTooFew saying %q", err, want)
	}
	log.Reset()
	keep := -1
	j, err = Resume(ResumeSpec{Dir: out, Device: "cpu", Ranks: 1, Steps: 4, Log: &log, Quiet: true, Override: func(s *rundata.Settings) { keep, s.Keep = s.Keep, 2 }})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if keep != 0 || j.data.Keep != 2 || !j.data.Quiet {
		t.Errorf("Override saw keep %d and set %d, want 0 and 2; quiet %v", keep, j.data.Keep, j.data.Quiet)
	}
	if err := j.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "extending the run from 3 to 4 steps") {
		t.Errorf("log %q does not say the run is extended", log.String())
	}
	if last, err := (checkpoints.Manager{Root: out}).Latest(); err != nil || filepath.Base(last) != "step-00000004" {
		t.Errorf("newest checkpoint %s, %v; want step 4", last, err)
	}
}
