package main

import (
	"errors"
	"testing"

	"mqa/cuda"
	"mqa/infer"
	"mqa/models"
)

// TestDeviceChecks asks the decoding commands' helpers for each device: the GPU backend is
// registered only by a build with -tags mqacuda, which CI does not make.
func TestDeviceChecks(t *testing.T) {
	if gpuBuilt() {
		t.Skip("this build has the GPU backend")
	}
	if err := checkDevice("generate", "cpu"); err != nil {
		t.Errorf("cpu: %v", err)
	}
	if err := checkDevice("generate", "cuda"); !errors.Is(err, cuda.ErrNoGPUBuild) || errors.Is(err, errUsage) {
		t.Errorf("cuda in a CPU build: %v, want the no-GPU-build error (exit 1)", err)
	}
	if err := checkDevice("generate", "tpu"); !errors.Is(err, errUsage) {
		t.Errorf("tpu: %v, want a usage error", err)
	}
	spec := infer.BenchSpec{Preset: "tiny", Task: models.TaskLM, Vocab: 40, Attn: []string{"mqa"}, Batches: []int{1}, Contexts: []int{4}, Beams: []int{1}, Steps: 1}
	if err := runBenchDecodeCUDA(spec, "fp32", cuda.DecodeOptions{}, 0, false); !errors.Is(err, cuda.ErrNoGPUBuild) {
		t.Errorf("bench decode -device cuda in a CPU build: %v", err)
	}
	cfg, err := models.Preset("tiny", models.TaskLM, 40)
	if err != nil {
		t.Fatal(err)
	}
	params, err := models.InitParams(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeBackend("generate", cfg, params, "cpu", "fp32", true)
	if cpu, ok := b.(*infer.CPU); err != nil || !ok || !cpu.NoCache {
		t.Errorf("cpu -nocache: %T %v", b, err)
	}
	if _, err := decodeBackend("generate", cfg, params, "cuda", "fp32", true); !errors.Is(err, errUsage) {
		t.Errorf("cuda -nocache: %v, want a usage error", err)
	}
	if _, err := decodeBackend("generate", cfg, params, "cuda", "fp16", false); !errors.Is(err, errUsage) {
		t.Errorf("cuda -cache fp16: %v, want a usage error", err)
	}
}
