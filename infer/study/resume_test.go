package study

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/models"
	"mqa/train/rundata"
)

// resumeSpec is a small LM comparison with uptrained rows into out.
func resumeSpec(out string) Spec {
	def, _ := models.PresetTraining("tiny")
	s := Spec{Preset: "tiny", Steps: 6, Attns: []string{"mha", "mqa"}, Tasks: []string{"lm"}, Out: out, Device: "cpu", DecodeDevice: "cpu",
		Seed: 1, Seeds: 1, TimingReps: 1, MTCorpus: "bible.en-es", Dropout: -1, BLEULines: -1, Quiet: true, EvalBatches: 2, Uptrain: 0.5, Ranks: 1}
	s.FillDefaults(def)
	s.DecodeBatch = 2
	return s
}

// TestResume: a comparison interrupted in its first training and then resumed ends with
// the same models as one that ran through (each row's steps, losses and validation
// perplexity, to the last bit); resuming a finished comparison trains nothing again; and
// resuming with other flags is refused.
func TestResume(t *testing.T) {
	whole, err := Run(context.Background(), resumeSpec(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	// Stopped after the first training step (the comparison asks its context once before
	// each model and the training once after each step).
	dir := t.TempDir()
	if _, err := Run(&stopAfter{Context: context.Background(), calls: 1}, resumeSpec(dir)); !errors.Is(err, rundata.ErrInterrupted) || !strings.Contains(err.Error(), "-resume") {
		t.Fatalf("interrupted comparison: %v", err)
	}
	if latest, err := (checkpoints.Manager{Root: filepath.Join(dir, "lm-mha")}).Latest(); err != nil || filepath.Base(latest) != "step-00000001" {
		t.Fatalf("the interrupted mha run's newest checkpoint is %q (%v), want its first step's", latest, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lm-mqa")); !os.IsNotExist(err) {
		t.Fatalf("the interrupted comparison went on to mqa (%v)", err)
	}
	// A checkpoint half written when the process was killed.
	torn := filepath.Join(dir, "lm-mha", ".tmp-step-00000002-1234")
	if err := os.MkdirAll(torn, 0o755); err != nil {
		t.Fatal(err)
	}
	s := resumeSpec(dir)
	s.Resume = true
	same := func(what string, got Results) {
		t.Helper()
		if len(got.Results) != len(whole.Results) {
			t.Fatalf("%s: %d rows, want %d", what, len(got.Results), len(whole.Results))
		}
		for i, w := range whole.Results {
			g := got.Results[i]
			if g.Attention != w.Attention || g.Steps != w.Steps || g.FinalLoss != w.FinalLoss || g.ValidNLL != w.ValidNLL || g.TestNLL != w.TestNLL ||
				len(g.TrainCurve) != len(w.TrainCurve) || len(g.ValidCurve) != len(w.ValidCurve) || !(g.TrainTokensPerS > 0) {
				t.Errorf("%s: row %d is %s, %d steps, loss %v, valid %v, test %v, %d/%d curve points, %v tokens/s; uninterrupted: %s, %d, %v, %v, %v, %d/%d",
					what, i, g.Attention, g.Steps, g.FinalLoss, g.ValidNLL, g.TestNLL, len(g.TrainCurve), len(g.ValidCurve), g.TrainTokensPerS,
					w.Attention, w.Steps, w.FinalLoss, w.ValidNLL, w.TestNLL, len(w.TrainCurve), len(w.ValidCurve))
			}
		}
	}
	resumed, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	same("resumed", resumed)
	if _, err := os.Stat(torn); !os.IsNotExist(err) {
		t.Errorf("the half-written checkpoint is still there (%v)", err)
	}

	log := filepath.Join(dir, "lm-mha", checkpoints.LogFile)
	before, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	same("resumed when finished", again)
	if after, err := os.ReadFile(log); err != nil || !bytes.Equal(after, before) {
		t.Errorf("resuming a finished comparison changed %s (%v)", log, err)
	}

	// A run whose log predates the token counts is scored, its training speed left unknown.
	mqaLog := filepath.Join(dir, "lm-mqa", checkpoints.LogFile)
	b, err := os.ReadFile(mqaLog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mqaLog, regexp.MustCompile(`,"tokens":[0-9]+`).ReplaceAll(b, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	old, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if r := old.Results[1]; r.Attention != "mqa" || r.TrainTokensPerS != 0 || r.ValidNLL != whole.Results[1].ValidNLL {
		t.Errorf("mqa with an old log: %s, %v tokens/s, valid %v", r.Attention, r.TrainTokensPerS, r.ValidNLL)
	}

	for _, c := range []struct {
		flag string
		edit func(*Spec)
	}{
		{"-steps", func(s *Spec) { s.Steps = 8 }},
		{"-seed", func(s *Spec) { s.Seed = 2 }},
		{"-dropout", func(s *Spec) { s.Dropout = 0.3 }},
	} {
		other := s
		c.edit(&other)
		if _, err := Run(context.Background(), other); err == nil || !strings.Contains(err.Error(), "not the") {
			t.Errorf("-resume with another %s: %v", c.flag, err)
		}
	}
}

// TestResumeAfterScoringStopped: a comparison stopped while it scores a trained model ends
// at once, starts no other model, and -resume scores that model again without training it.
func TestResumeAfterScoringStopped(t *testing.T) {
	dir := t.TempDir()
	s := resumeSpec(dir)
	s.Uptrain, s.Attns = 0, []string{"mha", "mqa"}
	_, err := Run(&stopAfter{Context: context.Background(), calls: 1 + s.Steps}, s)
	if !errors.Is(err, rundata.ErrInterrupted) || !strings.Contains(err.Error(), "while scoring") {
		t.Fatalf("stopped while scoring: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lm-mqa")); !os.IsNotExist(err) {
		t.Fatalf("the stopped comparison went on to mqa (%v)", err)
	}
	log := filepath.Join(dir, "lm-mha", checkpoints.LogFile)
	before, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	s.Resume = true
	res, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 2 || res.Results[0].Steps != s.Steps || !(res.Results[0].ValidNLL > 0) {
		t.Fatalf("resumed: %+v", res.Results)
	}
	if after, err := os.ReadFile(log); err != nil || !bytes.Equal(after, before) {
		t.Errorf("resuming retrained the scored model (%v)", err)
	}
}

// stopAfter is a context that reports itself cancelled from its calls+1st Err on.
type stopAfter struct {
	context.Context
	calls int
}

func (c *stopAfter) Err() error {
	if c.calls--; c.calls < 0 {
		return context.Canceled
	}
	return nil
}

// TestResumeNeedsOut: -resume names the directory to continue, and it must exist.
func TestResumeNeedsOut(t *testing.T) {
	for _, out := range []string{"", filepath.Join(t.TempDir(), "missing")} {
		s := resumeSpec(out)
		s.Resume = true
		if err := s.Check(); err == nil || !strings.Contains(err.Error(), "-resume") {
			t.Errorf("-resume with -out %q: %v", out, err)
		}
	}
}
