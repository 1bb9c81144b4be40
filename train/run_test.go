package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/models"
)

// lossCurve reads the training losses of train.jsonl by step.
func lossCurve(t *testing.T, dir string) map[int]float64 {
	t.Helper()
	entries, err := ReadLog(filepath.Join(dir, checkpoints.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	curve := map[int]float64{}
	for _, e := range entries {
		if e.Loss != nil {
			if _, dup := curve[e.Step]; dup {
				t.Fatalf("step %d logged twice", e.Step)
			}
			curve[e.Step] = *e.Loss
		}
	}
	return curve
}

func newLMRun(t *testing.T, steps int) (*Trainer, LMSource, []Batch) {
	t.Helper()
	tok, ids := lmText(t)
	s := DefaultSettings(steps)
	s.Seed = 7
	cfg := tinyCfg(models.TaskLM, tok.VocabSize(), 2)
	cfg.Dropout = 0.1 // resume must also restore the dropout masks
	tr, err := NewTrainer(cfg, nil, s, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	stream, err := data.NewLMStream(ids, 2, 16, 3)
	if err != nil {
		t.Fatal(err)
	}
	in, tg := data.EvalWindows(ids[:200], 16)
	var valid []Batch
	for i := range in {
		valid = append(valid, Batch{Shape: models.Shape{Batch: 1, TgtLen: len(in[i])}, Tokens: in[i], Targets: tg[i]})
	}
	return tr, LMSource{stream}, valid
}

// TestResumeIsExact interrupts a run, resumes it and compares the loss curve and the final
// weights with an uninterrupted run: on the CPU they must be bit-identical.
func TestResumeIsExact(t *testing.T) {
	const steps = 24
	full := t.TempDir()
	tr, src, valid := newLMRun(t, steps)
	sumFull, err := tr.Run(context.Background(), src, RunOptions{Out: full, Valid: valid, EvalEvery: 8, CheckpointEvery: 8})
	if err != nil {
		t.Fatal(err)
	}

	part := t.TempDir()
	tr2, src2, _ := newLMRun(t, steps)
	ctx, cancel := context.WithCancel(context.Background())
	stopAfter := 11
	stopping := &stopSource{Source: src2, n: stopAfter, cancel: cancel}
	_, err = tr2.Run(ctx, stopping, RunOptions{Out: part, Valid: valid, EvalEvery: 8, CheckpointEvery: 8})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run returned %v", err)
	}
	tr3, st, dir, err := Resume(part, "cpu", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != stopAfter || filepath.Base(dir) != "step-00000011" {
		t.Fatalf("resumed from %s at step %d, want step %d", dir, st.Step, stopAfter)
	}
	_, _, valid3 := newLMRun(t, steps)
	src3 := newLMSourceAt(t, st.Data)
	sumPart, err := tr3.Run(context.Background(), src3, RunOptions{Out: part, Valid: valid3, EvalEvery: 8, CheckpointEvery: 8})
	if err != nil {
		t.Fatal(err)
	}
	a, b := lossCurve(t, full), lossCurve(t, part)
	if len(a) != steps || len(b) != steps {
		t.Fatalf("logged %d and %d steps, want %d", len(a), len(b), steps)
	}
	for step, la := range a {
		if b[step] != la {
			t.Errorf("step %d: loss %v uninterrupted, %v resumed", step, la, b[step])
		}
	}
	if sumFull.ValLoss != sumPart.ValLoss {
		t.Errorf("final validation loss %v vs %v", sumFull.ValLoss, sumPart.ValLoss)
	}
	sameParams(t, tr, tr3, "uninterrupted and resumed")
	if !checkpoints.IsComplete(sumPart.Checkpoint) {
		t.Errorf("final checkpoint %s is not complete", sumPart.Checkpoint)
	}
}

func newLMSourceAt(t *testing.T, st data.StreamState) LMSource {
	t.Helper()
	_, src, _ := newLMRun(t, 1)
	if err := src.Restore(st); err != nil {
		t.Fatal(err)
	}
	return src
}

// stopSource cancels the run's context when it hands out its n-th batch.
type stopSource struct {
	Source
	n, served int
	cancel    func()
}

func (s *stopSource) Next() Batch {
	s.served++
	if s.served == s.n {
		s.cancel()
	}
	return s.Source.Next()
}

func TestNonFiniteStops(t *testing.T) {
	poison := func(tr *Trainer) {
		tr.Params.Get("embed.weight").Data().([]float32)[5] = float32(math.NaN())
	}
	out := t.TempDir()
	tr, src, _ := newLMRun(t, 6)
	if _, err := tr.Run(context.Background(), src, RunOptions{Out: out, CheckpointEvery: 2}); err != nil {
		t.Fatal(err)
	}
	// Continue the finished run for 4 more steps with a poisoned weight: the first step stops it.
	tr2, st, _, err := Resume(out, "cpu", 10)
	if err != nil {
		t.Fatal(err)
	}
	poison(tr2)
	_, err = tr2.Run(context.Background(), newLMSourceAt(t, st.Data), RunOptions{Out: out, CheckpointEvery: 2})
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "step 7") {
		t.Fatalf("poisoned run returned %v, want ErrNonFinite at step 7", err)
	}
	latest, err := checkpoints.Manager{Root: out}.Latest()
	if err != nil || filepath.Base(latest) != "step-00000006" {
		t.Fatalf("latest checkpoint %s (%v), want the last good one, step 6", latest, err)
	}
	// With SkipNonFinite the run goes on and skips every update.
	tr3, st3, _, err := Resume(out, "cpu", 8)
	if err != nil {
		t.Fatal(err)
	}
	tr3.Settings.SkipNonFinite = true
	poison(tr3)
	if _, err := tr3.Run(context.Background(), newLMSourceAt(t, st3.Data), RunOptions{Out: out}); err != nil {
		t.Fatalf("skipping run: %v", err)
	}
	if tr3.Opt.Steps != st3.OptSteps {
		t.Errorf("optimizer took %d updates with a NaN weight, want none", tr3.Opt.Steps-st3.OptSteps)
	}
}

// TestFailedCheckpointKeepsPrevious makes the second checkpoint write fail: the run reports
// the error with the path and the first checkpoint stays complete and loadable.
func TestFailedCheckpointKeepsPrevious(t *testing.T) {
	out := t.TempDir()
	tr, src, _ := newLMRun(t, 4)
	saves := 0
	extra := func(dir string) error {
		saves++
		if saves == 2 {
			// a regular file where the writer needs a directory: the write fails like a full disk
			blocker := filepath.Join(dir, "sub")
			if err := os.WriteFile(blocker, nil, 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(blocker, "tokenizer.json"), []byte("{}"), 0o644)
		}
		return nil
	}
	_, err := tr.Run(context.Background(), src, RunOptions{Out: out, CheckpointEvery: 2, SaveExtra: extra})
	if err == nil || !strings.Contains(err.Error(), "checkpoint at step 4") || !strings.Contains(err.Error(), out) {
		t.Fatalf("run returned %v, want a checkpoint error naming the path", err)
	}
	latest, err := checkpoints.Manager{Root: out}.Latest()
	if err != nil || filepath.Base(latest) != "step-00000002" {
		t.Fatalf("latest %s (%v), want step 2", latest, err)
	}
	if _, _, err := models.LoadModel(latest); err != nil {
		t.Fatalf("the surviving checkpoint does not load: %v", err)
	}
}

// TestCheckpointValLossIsOwnStep: a checkpoint records a validation loss only when its own
// step was validated, so the best checkpoint is never chosen by a stale number.
func TestCheckpointValLossIsOwnStep(t *testing.T) {
	out := t.TempDir()
	tr, src, valid := newLMRun(t, 4)
	if _, err := tr.Run(context.Background(), src, RunOptions{Out: out, Valid: valid, EvalBatches: 2, EvalEvery: 3, CheckpointEvery: 1}); err != nil {
		t.Fatal(err)
	}
	infos, err := checkpoints.Manager{Root: out}.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 4 {
		t.Fatalf("%d checkpoints, want 4", len(infos))
	}
	for _, in := range infos {
		validated := in.Step == 3 || in.Step == 4
		if validated == math.IsNaN(in.ValLoss) {
			t.Errorf("step %d: recorded validation loss %v", in.Step, in.ValLoss)
		}
	}
}
