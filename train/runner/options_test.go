package runner

import (
	"testing"

	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

func TestOptionsSettings(t *testing.T) {
	d := models.Training{Steps: 300, LR: 2e-3, Vocab: 1000, SeqLen: 32, Batch: 8, MaxTokens: 512, MaxLen: 128}
	o := Options{Warmup: -1, Accum: 2, MinLR: 1e-5, Clip: 1, WeightDecay: 0.01, Smoothing: 0.1, Schedule: train.ScheduleCosine, Seed: 7, Keep: 3}
	s, err := o.Settings(d)
	if err != nil {
		t.Fatal(err)
	}
	want := train.DefaultSettings(300)
	if s.Steps != 300 || s.Schedule.Peak != 2e-3 || s.Schedule.Warmup != want.Schedule.Warmup || s.Schedule.Kind != train.ScheduleCosine ||
		s.Schedule.Min != 1e-5 || s.Accum != 2 || s.Seed != 7 || s.LabelSmoothing != 0.1 {
		t.Errorf("settings over the defaults: %+v", s)
	}
	if o.EvalEvery != 30 || o.CkptEvery != 30 {
		t.Errorf("eval every %d, checkpoint every %d; want a tenth of 300", o.EvalEvery, o.CkptEvery)
	}
	given := Options{Steps: 5, Warmup: 0, LR: 0.5, Accum: 1, Schedule: train.ScheduleConstant, EvalEvery: 2}
	if s, err = given.Settings(d); err != nil || s.Steps != 5 || s.Schedule.Peak != 0.5 || s.Schedule.Warmup != 0 || given.EvalEvery != 2 || given.CkptEvery != 1 {
		t.Errorf("given settings: %+v, %v; eval %d, ckpt %d", s, err, given.EvalEvery, given.CkptEvery)
	}
	bad := Options{Accum: 1, Schedule: "linear"}
	if _, err := bad.Settings(d); err == nil || bad.EvalEvery != 0 {
		t.Errorf("schedule linear: %v, eval every %d; want an error and nothing filled", err, bad.EvalEvery)
	}
}

func TestOptionsData(t *testing.T) {
	d := models.Training{Vocab: 1000, SeqLen: 32, Batch: 8, MaxTokens: 512, MaxLen: 128}
	o := Options{Seed: 3, EvalEvery: 4, CkptEvery: 5, Keep: 6, EvalBatches: 7}
	got := o.Data(rundata.Settings{Task: models.TaskLM, Train: "t.txt", Vocab: 500, Batch: 2}, d)
	want := rundata.Settings{Task: models.TaskLM, Train: "t.txt", Vocab: 500, SeqLen: 32, Batch: 2, MaxTokens: 512, MaxLen: 128,
		Seed: 3, EvalEvery: 4, CkptEvery: 5, Keep: 6, EvalBatches: 7}
	if got != want {
		t.Errorf("Data = %+v, want %+v", got, want)
	}
}
