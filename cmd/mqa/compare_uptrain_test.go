package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/infer/study"
	"mqa/models"
	"mqa/train/rundata"
)

// TestCompareUptrain runs a small LM comparison with -uptrain and checks the uptrained
// row beside the from-scratch ones: its source and provenance, its parameter count, its
// curves after the source's step, its baseline (MHA continued as long) and its place in the
// report.
func TestCompareUptrain(t *testing.T) {
	out := t.TempDir()
	args := []string{"compare", "-preset", "tiny", "-tasks", "lm", "-attn", "mha,mqa", "-steps", "4", "-uptrain", "0.5",
		"-decode-batch", "2", "-eval-batches", "2", "-out", out}
	if code := run(args); code != 0 {
		t.Fatalf("mqa %s exited with %d", strings.Join(args, " "), code)
	}
	var res study.Results
	if err := checkpoints.ReadJSON(filepath.Join(out, "results.json"), &res, 1<<26); err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 4 {
		t.Fatalf("%d results, want mha, mqa, mha continued and uptrained mqa", len(res.Results))
	}
	mha, scratch, cont, up := res.Results[0], res.Results[1], res.Results[2], res.Results[3]
	const label, contLabel = "mqa (uptrained from mha, 2 steps)", "mha (continued, 2 steps)"
	if mha.Attention != "mha" || scratch.Attention != "mqa" || cont.Attention != contLabel || up.Attention != label {
		t.Fatalf("rows %q, %q, %q, %q", mha.Attention, scratch.Attention, cont.Attention, up.Attention)
	}
	if mha.Baseline != "" || scratch.Baseline != "mha" || cont.Baseline != "mha" || up.Baseline != contLabel || up.LnPPLDiffCI == nil {
		t.Errorf("baselines %q, %q, %q, %q (uptrained interval %v)", mha.Baseline, scratch.Baseline, cont.Baseline, up.Baseline, up.LnPPLDiffCI)
	}
	if cont.KVHeads != mha.KVHeads || cont.Params != mha.Params || cont.Steps != 2 || cont.TrainCurve[0].Step != mha.ScoredStep+1 {
		t.Errorf("continued mha: %d K/V heads, %d parameters, %d steps, curve %v", cont.KVHeads, cont.Params, cont.Steps, cont.TrainCurve)
	}
	if mha.UptrainedFrom != nil || scratch.UptrainedFrom != nil {
		t.Error("a from-scratch row has a provenance")
	}
	want := rundata.UptrainSource{Checkpoint: mha.ScoredCheckpoint, Step: mha.ScoredStep, Attention: "mha", Pooling: models.PoolingMean, Params: mha.Params}
	if up.UptrainedFrom == nil || *up.UptrainedFrom != want {
		t.Fatalf("uptrained from %+v, want %+v", up.UptrainedFrom, want)
	}
	// Pooling removes 2·d·(h − 1)·d_k parameters per attention block; d_ff stays mha's.
	cfg, err := models.Preset("tiny", models.TaskLM, 1000)
	if err != nil {
		t.Fatal(err)
	}
	fewer := 2 * cfg.Dim * (cfg.Heads - 1) * cfg.HeadDim * cfg.Layers
	if up.KVHeads != 1 || up.FFDim != mha.FFDim || up.Params != mha.Params-fewer || scratch.Params != mha.Params {
		t.Errorf("uptrained: %d K/V heads, d_ff %d, %d parameters; want 1, mha's %d, %d", up.KVHeads, up.FFDim, up.Params, mha.FFDim, mha.Params-fewer)
	}
	if up.Steps != 2 || len(up.TrainCurve) != 2 || up.TrainCurve[0].Step != mha.ScoredStep+1 || !(up.ValidNLL > 0) || len(up.Decode) != 2 {
		t.Errorf("uptrained row: %d steps, curve %v, valid NLL %v, %d decode timings", up.Steps, up.TrainCurve, up.ValidNLL, len(up.Decode))
	}
	if _, run := readRun(t, filepath.Join(out, "lm-mqa-uptrained")); run.UptrainedFrom == nil || *run.UptrainedFrom != want {
		t.Errorf("the uptrained checkpoint's run.json records %+v", run.UptrainedFrom)
	}
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if table := tableAfter(string(report), "Table 3"); !strings.Contains(table, "| "+label+" |") || !strings.Contains(table, "| mqa |") {
		t.Errorf("the LM table lacks the uptrained or the from-scratch row:\n%s", table)
	}
	for _, w := range []string{`rows marked "uptrained" are not trained from scratch`, "lm, " + label + " vs " + contLabel, "lm, " + contLabel + " vs mha"} {
		if !strings.Contains(string(report), w) {
			t.Errorf("the report lacks %q", w)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "lm-mha-continued")); err != nil {
		t.Errorf("the continued model's checkpoints: %v", err)
	}
}

func TestCompareUptrainBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-uptrain", "1.5"}, {"-uptrain", "-0.1"}, {"-uptrain", "0.1", "-attn", "mqa,gqa:2"}, {"-uptrain", "0.1", "-attn", "mha"},
	} {
		if code, _ := capture(t, append([]string{"compare", "-out", t.TempDir()}, args...)...); code != 2 {
			t.Errorf("mqa compare %s exited %d, want 2", strings.Join(args, " "), code)
		}
	}
}
