package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// trainSource trains a tiny multi-head LM for 4 steps and returns its run directory.
func trainSource(t *testing.T) string {
	t.Helper()
	tr, va, te := smallText(t)
	src := filepath.Join(t.TempDir(), "src")
	if code, _ := capture(t, trainArgs(src, tr, va, te, "4")...); code != 0 {
		t.Fatalf("training the source exited %d", code)
	}
	return src
}

// readRun reads the run.json of the newest checkpoint under run.
func readRun(t *testing.T, run string) (string, rundata.Settings) {
	t.Helper()
	dir, err := checkpoints.Resolve(run)
	if err != nil {
		t.Fatal(err)
	}
	var d rundata.Settings
	if err := checkpoints.ReadJSON(filepath.Join(dir, checkpoints.RunFile), &d, 1<<20); err != nil {
		t.Fatal(err)
	}
	return dir, d
}

// TestUptrainConvertOnly pools an LM and a translation model without training them
// (-steps 0), checks the converted config and the provenance in run.json, and evaluates
// the converted checkpoints with mqa eval.
func TestUptrainConvertOnly(t *testing.T) {
	lm := trainSource(t)
	trainPairs, validPairs, testPairs := smallPairs(t)
	mt := filepath.Join(t.TempDir(), "mt")
	if code, _ := capture(t, "train", "-task", "translate", "-steps", "2", "-vocab", "300", "-bias",
		"-train", trainPairs, "-valid", validPairs, "-test", testPairs, "-out", mt); code != 0 {
		t.Fatalf("training the translation source exited %d", code)
	}
	for _, c := range []struct {
		name, src, attn string
		kv, step        int
	}{{"lm mqa", lm, "mqa", 1, 4}, {"translate gqa:2", mt, "gqa:2", 2, 2}, {"lm mha, unpooled", lm, "mha", 4, 4}} {
		t.Run(c.name, func(t *testing.T) {
			srcDir, srcRun := readRun(t, c.src)
			srcCfg, err := models.LoadConfig(srcDir)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "up")
			if code, _ := capture(t, "uptrain", "-from", c.src, "-attn", c.attn, "-steps", "0", "-out", out); code != 0 {
				t.Fatalf("uptrain -steps 0 exited %d", code)
			}
			dir, run := readRun(t, out)
			cfg, err := models.LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.KVHeads != c.kv || cfg.FFDim != srcCfg.FFDim || cfg.Heads != srcCfg.Heads {
				t.Errorf("converted config: %d K/V heads, d_ff %d; want %d and the source's d_ff %d", cfg.KVHeads, cfg.FFDim, c.kv, srcCfg.FFDim)
			}
			if pooled := c.kv < srcCfg.KVHeads; pooled != (cfg.ParamCount() < srcCfg.ParamCount()) {
				t.Errorf("converted model has %d parameters, the source %d: pooling must remove some, and only pooling", cfg.ParamCount(), srcCfg.ParamCount())
			}
			want := rundata.UptrainSource{Checkpoint: srcDir, Step: c.step, Attention: "mha", Pooling: models.PoolingMean, Params: srcCfg.ParamCount()}
			if run.UptrainedFrom == nil || *run.UptrainedFrom != want {
				t.Errorf("provenance %+v, want %+v", run.UptrainedFrom, want)
			}
			// The data and their order are the source's; checkpointing and validation are this run's.
			run.UptrainedFrom, srcRun.EvalEvery, srcRun.CkptEvery, srcRun.Keep, srcRun.EvalBatches = nil, run.EvalEvery, run.CkptEvery, run.Keep, run.EvalBatches
			if !rundata.SameData(run, srcRun) { // the files compared by identity, not by pointer
				t.Errorf("data settings %+v, want the source's %+v", run, srcRun)
			}
			code, js := capture(t, "eval", "-ckpt", out, "-json")
			var r rundata.Score
			if code != 0 || json.Unmarshal([]byte(js), &r) != nil || r.Tokens == 0 || !(r.NLL > 0) {
				t.Fatalf("eval of the converted checkpoint: exit %d, %q", code, js)
			}
		})
	}
}

// uptrainArgs uptrains src to MQA for 6 steps into out, checkpointing every step.
func uptrainArgs(src, out string) []string {
	return []string{"-from", src, "-attn", "mqa", "-steps", "6", "-warmup", "2", "-ckpt-every", "1", "-eval-every", "3", "-out", out}
}

// TestUptrainResumesExactly interrupts an uptraining run after its first step and resumes
// it with mqa train -resume: the losses of every step and the final weights must equal
// those of an uninterrupted run.
func TestUptrainResumesExactly(t *testing.T) {
	src := trainSource(t)
	ref := filepath.Join(t.TempDir(), "ref")
	if err := uptrain(context.Background(), uptrainArgs(src, ref)); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(t.TempDir(), "run")
	interrupted, cancel := context.WithCancel(context.Background())
	cancel()
	if err := uptrain(interrupted, uptrainArgs(src, run)); !errors.Is(err, rundata.ErrInterrupted) {
		t.Fatalf("uptraining with a cancelled context returned %v, want an interruption", err)
	}
	if dir, _ := readRun(t, run); !strings.HasSuffix(dir, "step-00000001") {
		t.Fatalf("the interrupted run's checkpoint is %s, want step 1", dir)
	}
	if code, _ := capture(t, "train", "-resume", run); code != 0 {
		t.Fatalf("resuming exited %d", code)
	}
	want, got := stepLosses(t, ref), stepLosses(t, run)
	if len(want) != 6 || len(got) != len(want) {
		t.Fatalf("%d losses uninterrupted, %d resumed; want 6", len(want), len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d: loss %v resumed, %v uninterrupted", i+1, got[i], want[i])
		}
	}
	if !bytes.Equal(finalWeights(t, ref), finalWeights(t, run)) {
		t.Error("the resumed run's final weights differ from the uninterrupted run's")
	}
	if _, d := readRun(t, run); d.UptrainedFrom == nil || d.UptrainedFrom.Step != 4 {
		t.Errorf("the resumed run's provenance is %+v", d.UptrainedFrom)
	}
	// Uptraining continues the source's data: after its 6 steps the data position is that
	// of the source's training run taken to 4 + 6 steps.
	tr, va, te := smallText(t)
	longer := filepath.Join(t.TempDir(), "longer")
	if code, _ := capture(t, trainArgs(longer, tr, va, te, "10")...); code != 0 {
		t.Fatalf("training the source 10 steps exited %d", code)
	}
	if got, want := dataState(t, ref), dataState(t, longer); got != want {
		t.Errorf("data position after uptraining %+v, after training the source 10 steps %+v", got, want)
	}
}

// dataState reads the data position of a run's newest checkpoint.
func dataState(t *testing.T, run string) data.StreamState {
	t.Helper()
	dir, err := checkpoints.Resolve(run)
	if err != nil {
		t.Fatal(err)
	}
	var st train.State
	if err := checkpoints.ReadJSON(filepath.Join(dir, checkpoints.StateFile), &st, 1<<20); err != nil {
		t.Fatal(err)
	}
	return st.Data
}

// stepLosses reads the training losses of a run's log, in step order.
func stepLosses(t *testing.T, run string) []float64 {
	t.Helper()
	log, err := train.ReadLog(filepath.Join(run, checkpoints.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, e := range log {
		if e.Loss != nil {
			if e.Step != len(out)+1 {
				t.Fatalf("%s: step %d follows step %d", run, e.Step, len(out))
			}
			out = append(out, *e.Loss)
		}
	}
	return out
}

func TestUptrainBadCommandLines(t *testing.T) {
	src := trainSource(t)
	out := filepath.Join(t.TempDir(), "out")
	for _, args := range [][]string{
		{"-attn", "mqa", "-steps", "0"},                 // no -from
		{"-from", src, "-steps", "0"},                   // no -attn
		{"-from", src, "-attn", "mqa"},                  // no -steps
		{"-from", src, "-attn", "mqa", "-steps", "-1"},  // negative steps
		{"-from", src, "-attn", "gqa:3", "-steps", "0"}, // does not divide the heads
		{"-from", src, "-attn", "mqa", "-steps", "0", "-vocab", "500"},
		{"-from", src, "-attn", "mqa", "-steps", "0", "-seq", "100000"},
	} {
		if code, _ := capture(t, append([]string{"uptrain", "-out", out}, args...)...); code != 2 {
			t.Errorf("mqa uptrain %s exited %d, want 2", strings.Join(args, " "), code)
		}
	}
	if code, _ := capture(t, "uptrain", "-from", filepath.Join(t.TempDir(), "missing"), "-attn", "mqa", "-steps", "0"); code != 1 {
		t.Errorf("a missing source exited %d, want 1", code)
	}
	// Pooling MQA further, or into a run directory that holds checkpoints, is refused.
	if code, _ := capture(t, "uptrain", "-from", src, "-attn", "mqa", "-steps", "0", "-out", out); code != 0 {
		t.Fatalf("uptrain exited %d", code)
	}
	if code, _ := capture(t, "uptrain", "-from", out, "-attn", "gqa:2", "-steps", "0"); code != 2 {
		t.Errorf("pooling an MQA model into more K/V heads exited %d, want 2", code)
	}
	if code, _ := capture(t, "uptrain", "-from", src, "-attn", "mqa", "-steps", "0", "-out", out); code != 1 {
		t.Errorf("uptraining into a run with checkpoints exited %d, want 1", code)
	}
	// A converted checkpoint has no training state, so training it further needs -lr.
	gqa := filepath.Join(t.TempDir(), "gqa")
	if code, _ := capture(t, "uptrain", "-from", src, "-attn", "gqa:2", "-steps", "0", "-out", gqa); code != 0 {
		t.Fatalf("uptrain to gqa:2 exited %d", code)
	}
	if code, _ := capture(t, "uptrain", "-from", gqa, "-attn", "mqa", "-steps", "3", "-out", filepath.Join(t.TempDir(), "x")); code != 2 {
		t.Errorf("training a converted checkpoint without -lr exited %d, want 2", code)
	}
}
