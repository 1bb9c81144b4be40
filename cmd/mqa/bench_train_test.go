package main

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"mqa/cuda"
	"mqa/layers"
	"mqa/models"
	"mqa/train/trainbench"
)

// benchTrainJSON runs mqa bench train -json and decodes its one object.
func benchTrainJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	code, out := capture(t, append([]string{"bench", "train", "-json"}, args...)...)
	if code != 0 {
		t.Fatalf("bench train %v: exit %d, output %q", args, code, out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench train %v: %v in %q", args, err, out)
	}
	return res
}

func TestBenchTrainTranslateCPU(t *testing.T) {
	t.Setenv(cuda.MemoryEnv, "")
	t.Setenv("MQA_CUDA_MATH", "")
	res := benchTrainJSON(t, "-task", "translate", "-preset", "tiny", "-attn", "mqa", "-device", "cpu", "-vocab", "50",
		"-shapes", "2x5x4,3x7x6", "-repeat", "2", "-gpu-memory", "0.5")
	cfg, err := models.Preset("tiny", models.TaskTranslate, 50)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = cfg.WithKVHeads(1, true); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"task": "translate", "shapes": 2.0, "shape_list": "2x5x4,3x7x6", "repeat": 2.0, "steps": 2.0,
		"kv_heads": 1.0, "ff_dim": float64(cfg.FFDim), "params": float64(cfg.ParamCount()), "vocab": 50.0, "device": "cpu"}
	for k, v := range want {
		if res[k] != v {
			t.Errorf("%s = %v, want %v", k, res[k], v)
		}
	}
	// The timed visit's mean: (2·4 + 3·6) / 2 decoder positions per step.
	if tokens := res["tokens_per_s"].(float64) * res["ms_per_step"].(float64) / 1e3; math.Abs(tokens-13) > 1e-6 {
		t.Errorf("tokens per step = %g, want 13", tokens)
	}
	wantFLOPs := (trainbench.TranslateFLOPs(cfg, models.Shape{Batch: 2, SrcLen: 5, TgtLen: 4}) + trainbench.TranslateFLOPs(cfg, models.Shape{Batch: 3, SrcLen: 7, TgtLen: 6})) / 2
	if f := res["flops_per_step"].(float64); math.Abs(f-wantFLOPs) > 1e-6*wantFLOPs {
		t.Errorf("flops_per_step = %g, want %g", f, wantFLOPs)
	}
	// Near log(50) at random initialisation, with smoothing.
	for _, k := range []string{"loss_first", "loss_last"} {
		if l := res[k].(float64); l < 2 || l > 8 {
			t.Errorf("%s = %g, want a cross-entropy near log(50) = 3.9", k, l)
		}
	}
	if _, ok := res["peak_gpu_bytes"]; ok {
		t.Errorf("peak_gpu_bytes = %v on the CPU, want it omitted", res["peak_gpu_bytes"])
	}
	if got := os.Getenv(cuda.MemoryEnv); got != "0.5" {
		t.Errorf("%s = %q after -gpu-memory 0.5", cuda.MemoryEnv, got)
	}
}

func TestBenchTrainLMCPU(t *testing.T) {
	t.Setenv("MQA_CUDA_MATH", "")
	res := benchTrainJSON(t, "-preset", "tiny", "-device", "cpu", "-vocab", "40", "-batch", "2", "-seq", "6", "-steps", "2", "-warmup", "1")
	cfg, err := models.Preset("tiny", models.TaskLM, 40)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Positions, cfg.TieEmbeddings, cfg.MaxLen = layers.PosLearned, false, 6
	want := map[string]any{"batch": 2.0, "seq": 6.0, "steps": 2.0, "vocab": 40.0, "params": float64(cfg.ParamCount()), "flops_per_step": trainbench.LMFLOPs(cfg, 2, 6)}
	for k, v := range want {
		if res[k] != v {
			t.Errorf("%s = %v, want %v", k, res[k], v)
		}
	}
	for _, k := range []string{"task", "shapes", "peak_gpu_bytes"} {
		if _, ok := res[k]; ok {
			t.Errorf("LM bench has %s = %v, want it omitted", k, res[k])
		}
	}
}

// TestBenchTrainRanksCPU: on N ranks a step trains one batch per rank, so the step's tokens
// and FLOPs are N times one rank's.
func TestBenchTrainRanksCPU(t *testing.T) {
	t.Setenv("MQA_CUDA_MATH", "")
	lm := benchTrainJSON(t, "-preset", "tiny", "-device", "cpu", "-vocab", "40", "-batch", "2", "-seq", "6", "-steps", "2", "-warmup", "1", "-ranks", "2")
	cfg, err := models.Preset("tiny", models.TaskLM, 40)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Positions, cfg.TieEmbeddings, cfg.MaxLen = layers.PosLearned, false, 6
	if lm["ranks"] != 2.0 || lm["flops_per_step"] != 2*trainbench.LMFLOPs(cfg, 2, 6) {
		t.Errorf("LM on 2 ranks: ranks %v, flops_per_step %v, want 2 and %v", lm["ranks"], lm["flops_per_step"], 2*trainbench.LMFLOPs(cfg, 2, 6))
	}
	mtArgs := []string{"-task", "translate", "-preset", "tiny", "-device", "cpu", "-vocab", "40", "-shapes", "2x5x4,3x4x6", "-repeat", "1"}
	one := benchTrainJSON(t, mtArgs...)
	three := benchTrainJSON(t, append(mtArgs, "-ranks", "3")...)
	if f1, f3 := one["flops_per_step"].(float64), three["flops_per_step"].(float64); three["ranks"] != 3.0 || math.Abs(f3-3*f1) > 1e-9*f3 {
		t.Errorf("translation on 3 ranks: ranks %v, flops_per_step %v, want 3 and 3 × %v", three["ranks"], f3, f1)
	}
}

func TestBenchTrainBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-task", "translate", "-preset", "tiny", "-device", "cpu"},
		{"-task", "translate", "-preset", "tiny", "-device", "cpu", "-shapes", "2x5"},
		{"-task", "translate", "-preset", "tiny", "-device", "cpu", "-shapes", "2x5x4,0x5x4"},
		{"-task", "translate", "-preset", "tiny", "-device", "cpu", "-shapes", "2x5x129"},
		{"-task", "translate", "-preset", "tiny", "-device", "cpu", "-shapes", "2x5x4", "-repeat", "0"},
		{"-task", "translate", "-preset", "tiny", "-device", "cpu", "-shapes", "2x5x4", "-seq", "8"},
		{"-preset", "tiny", "-device", "cpu", "-shapes", "2x5x4"},
		{"-task", "summarise", "-preset", "tiny", "-device", "cpu"},
		{"-preset", "tiny", "-device", "cpu", "-vocab", "1"},
		{"-preset", "tiny", "-device", "cpu", "-steps", "0"},
		{"-preset", "tiny", "-device", "cpu", "-gpu-memory", "lots"},
		{"-preset", "tiny", "-device", "cpu", "-gpus", "2"},
	} {
		if code, out := capture(t, append([]string{"bench", "train"}, args...)...); code != 2 {
			t.Errorf("bench train %v: exit %d, want 2 (output %q)", args, code, out)
		}
	}
}
