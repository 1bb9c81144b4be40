package decodebench

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"mqa/cuda"
	"mqa/infer"
	"mqa/models"
)

// TestRunCPU measures two tiny points on the CPU and checks the JSON object and the text.
func TestRunCPU(t *testing.T) {
	s := Spec{Device: "cpu", BenchSpec: infer.BenchSpec{Preset: "tiny", Task: models.TaskLM, Vocab: 40, Attn: []string{"mha", "mqa"},
		Batches: []int{2}, Contexts: []int{4}, Beams: []int{1}, Steps: 2, Seed: 1}}
	res, err := Run(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.CPU) != 2 || res.CPU[0].Attn != "mha" || res.CPU[1].KVHeads != 1 || res.GPU != nil {
		t.Fatalf("rows %+v, want mha and mqa (1 K/V head) on the CPU", res.CPU)
	}
	js := res.JSON()
	for k, want := range map[string]any{"preset": "tiny", "task": models.TaskLM, "vocab": 40, "steps": 2, "device": "cpu", "cpus": res.CPUs} {
		if js[k] != want {
			t.Errorf("JSON %s = %v, want %v", k, js[k], want)
		}
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if want := "decode benchmark: preset tiny, task lm, vocab 40, 2 steps per point, CPU ("; !strings.HasPrefix(text.String(), want) {
		t.Errorf("text %q, want it to start %q", text.String(), want)
	}
}

// TestRunGPUWithoutGPUBuild: the GPU benchmark of a build without -tags mqacuda (as CI's)
// says that the build has no GPU.
func TestRunGPUWithoutGPUBuild(t *testing.T) {
	if slices.Contains(infer.Backends(), "cuda") {
		t.Skip("this build has the GPU backend")
	}
	s := Spec{Device: "cuda", Caches: []string{"fp32"}, BenchSpec: infer.BenchSpec{Preset: "tiny", Task: models.TaskLM, Vocab: 40,
		Attn: []string{"mqa"}, Batches: []int{1}, Contexts: []int{4}, Beams: []int{1}, Steps: 1}}
	if _, err := Run(s, nil); !errors.Is(err, cuda.ErrNoGPUBuild) {
		t.Errorf("GPU benchmark in a CPU build: %v, want cuda.ErrNoGPUBuild", err)
	}
}

// TestGPUText checks the GPU heading and table on a made-up result: the MHA/this column
// compares points of the same cache, batch, beam and context.
func TestGPUText(t *testing.T) {
	res := Result{Spec: Spec{BenchSpec: infer.BenchSpec{Preset: "small", Task: models.TaskLM, Vocab: 8192, Steps: 16}, Options: cuda.DecodeOptions{Math: "bf16"}},
		GPU: &cuda.DecodeBenchResult{Device: "H100", CopyGBps: 2500, ReadGBps: 3000, FloorBW: "read", Skipped: []string{"mha batch 512"},
			Rows: []cuda.DecodeBenchRow{
				{Attn: "mha", KVHeads: 8, Cache: "fp32", Batch: 8, Beam: 1, Context: 96, StepUS: 200, TokenUS: 25, StepBytes: 3 << 20},
				{Attn: "mqa", KVHeads: 1, Cache: "fp32", Batch: 8, Beam: 1, Context: 96, StepUS: 50, TokenUS: 6.25, StepBytes: 1536},
				{Attn: "mqa", KVHeads: 1, Cache: "bf16", Batch: 8, Beam: 1, Context: 96, StepUS: 40, TokenUS: 5, StepBytes: 5 << 30},
			}}}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(text.String(), "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 2 headings, the table's head and 3 rows, and the skipped point:\n%s", len(lines), text.String())
	}
	for i, want := range []string{
		"decode benchmark: preset small, task lm, vocab 8192, 16 replayed steps per point, H100; weights fp32 with bf16 copies for the GEMMs, GEMMs bf16",
		"bandwidth measured in this run: copy 2500 GB/s, read 3000 GB/s; floor = bytes/step over the higher (read)",
	} {
		if lines[i] != want {
			t.Errorf("line %d %q, want %q", i, lines[i], want)
		}
	}
	for i, want := range []struct{ bytes, vs string }{{"3.00 MiB", "1.00×"}, {"1.5 KiB", "4.00×"}, {"5.00 GiB", " -"}} {
		row := lines[3+i]
		if !strings.Contains(row, want.bytes) || !strings.HasSuffix(strings.TrimRight(row, " "), want.vs) {
			t.Errorf("row %d %q: want bytes %q and MHA/this %q", i, row, want.bytes, want.vs)
		}
	}
	if lines[6] != "skipped (memory): mha batch 512" {
		t.Errorf("last line %q", lines[6])
	}
}

func TestCheck(t *testing.T) {
	ok := infer.BenchSpec{Preset: "tiny", Task: models.TaskTranslate, Vocab: 40, Attn: []string{"mha", "gqa:2", "mqa"}}
	preset, _ := models.Preset("tiny", models.TaskTranslate, 40)
	if maxLen, err := (Spec{BenchSpec: ok}).Check(); err != nil || maxLen != preset.MaxLen {
		t.Errorf("a good spec: max_len %d, %v; want %d", maxLen, err, preset.MaxLen)
	}
	for _, c := range []struct {
		change  func(*infer.BenchSpec)
		wantErr string
	}{
		{func(s *infer.BenchSpec) { s.Task = "summarise" }, `-task "summarise" (allowed: lm, translate)`},
		{func(s *infer.BenchSpec) { s.Vocab = 2 }, "-vocab 2 must be in 4..1048576"},
		{func(s *infer.BenchSpec) { s.Preset = "huge" }, `unknown preset "huge"`},
		{func(s *infer.BenchSpec) { s.Attn = []string{"mha", "gqa:3"} }, `attention "gqa:3"`},
	} {
		s := ok
		s.Attn = slices.Clone(ok.Attn)
		c.change(&s)
		if _, err := (Spec{BenchSpec: s}).Check(); err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%+v: %v, want %q", s, err, c.wantErr)
		}
	}
}
