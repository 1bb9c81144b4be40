// Package decodebench runs the incremental-decoding benchmark of mqa bench decode: on the
// CPU the benchmark of package infer (infer.Bench), on a GPU that of package cuda
// (cuda.RunDecodeBench, a build with -tags mqacuda), and gives the result as a JSON object
// or as text tables.
package decodebench

import (
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"

	"mqa/cuda"
	"mqa/infer"
	"mqa/models"
)

// Spec is one decode benchmark (mqa bench decode's flags fill it).
type Spec struct {
	infer.BenchSpec
	Device string // cpu or cuda
	// The GPU's settings: the K/V cache types to measure, the math, kernel and splits of
	// the decoder (Options.Cache is not used: Caches lists them), and the host-driven
	// search steps timed.
	Caches    []string
	Options   cuda.DecodeOptions
	HostSteps int
}

// Result is what a benchmark measured: CPU rows, or the GPU's result.
type Result struct {
	Spec
	CPU  []infer.BenchRow
	CPUs int // logical CPUs of the machine
	GPU  *cuda.DecodeBenchResult
}

// Check checks the task, vocabulary, preset and attention kinds and returns the preset's
// max_len. Its errors name the flags of mqa bench decode.
func (s Spec) Check() (maxLen int, err error) {
	if s.Task != models.TaskLM && s.Task != models.TaskTranslate {
		return 0, fmt.Errorf("-task %q (allowed: lm, translate)", s.Task)
	}
	if s.Vocab < 4 || s.Vocab > 1<<20 {
		return 0, fmt.Errorf("-vocab %d must be in 4..%d", s.Vocab, 1<<20)
	}
	base, err := models.Preset(s.Preset, s.Task, s.Vocab)
	if err != nil {
		return 0, err
	}
	for _, a := range s.Attn {
		if _, err := models.ParseAttention(a, base.Heads); err != nil {
			return 0, err
		}
	}
	return base.MaxLen, nil
}

// Run measures every point of s; progress (may be nil) gets a line per point. The
// contexts of a GPU benchmark may exceed the preset's max_len (its model's max_len is raised
// to fit); a CPU benchmark's are checked by the caller (infer.BenchSpec.Validate).
func Run(s Spec, progress io.Writer) (Result, error) {
	res := Result{Spec: s, CPUs: runtime.NumCPU()}
	var err error
	if s.Device != "cuda" {
		res.CPU, err = infer.Bench(s.BenchSpec, progress)
		return res, err
	}
	gs := cuda.DecodeBenchSpec{Preset: s.Preset, Task: s.Task, Vocab: s.Vocab, Attn: s.Attn, Batches: s.Batches, Contexts: s.Contexts,
		Beams: s.Beams, Steps: s.Steps, HostSteps: s.HostSteps, Seed: s.Seed, Caches: s.Caches, Math: s.Options.Math, Kernel: s.Options.Kernel, Splits: s.Options.Splits}
	res.GPU, err = cuda.RunDecodeBench(gs, progress)
	return res, err
}

// JSON is the result as mqa bench decode -json prints it.
func (r Result) JSON() map[string]any {
	out := map[string]any{"preset": r.Preset, "task": r.Task, "vocab": r.Vocab, "steps": r.Steps}
	if r.GPU == nil {
		out["cpus"], out["device"], out["rows"] = r.CPUs, "cpu", r.CPU
		return out
	}
	g := r.GPU
	out["device"], out["gpu"], out["copy_gbps"], out["read_gbps"], out["floor_bandwidth"] = "cuda", g.Device, g.CopyGBps, g.ReadGBps, g.FloorBW
	out["rows"], out["skipped"] = g.Rows, g.Skipped
	return out
}

// WriteText prints the result's heading and table.
func (r Result) WriteText(w io.Writer) error {
	if r.GPU == nil {
		fmt.Fprintf(w, "decode benchmark: preset %s, task %s, vocab %d, %d steps per point, CPU (%d cores), float32, random weights\n",
			r.Preset, r.Task, r.Vocab, r.Steps, r.CPUs)
		return infer.WriteBenchTable(w, r.CPU)
	}
	weights := "fp32"
	if r.Options.Math == "bf16" {
		weights = "fp32 with bf16 copies for the GEMMs"
	}
	g := r.GPU
	fmt.Fprintf(w, "decode benchmark: preset %s, task %s, vocab %d, %d replayed steps per point, %s; weights %s, GEMMs %s\n",
		r.Preset, r.Task, r.Vocab, r.Steps, g.Device, weights, r.Options.Math)
	fmt.Fprintf(w, "bandwidth measured in this run: copy %.0f GB/s, read %.0f GB/s; floor = bytes/step over the higher (%s)\n",
		g.CopyGBps, g.ReadGBps, g.FloorBW)
	return WriteGPUTable(w, g.Rows, g.Skipped)
}

// WriteGPUTable prints GPU rows with each point's speed-up over MHA, then the points
// skipped for lack of memory.
func WriteGPUTable(w io.Writer, rows []cuda.DecodeBenchRow, skipped []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "attn\tkv\tcache\tbatch\tbeam\tcontext\tµs/step\tµs/token\tenc µs/token\tsearch µs/step\tbytes/step\tGB/s\tfloor µs\t× floor\tkernels\tsplits\tMHA/this\t")
	type point struct {
		cache                string
		batch, beam, context int
	}
	mha := map[point]float64{}
	for _, r := range rows {
		if r.KVHeads > 0 && r.Attn == "mha" {
			mha[point{r.Cache, r.Batch, r.Beam, r.Context}] = r.StepUS
		}
	}
	for _, r := range rows {
		enc, host, vs := "-", "-", "-"
		if r.EncoderUS > 0 {
			enc = fmt.Sprintf("%.2f", r.EncoderUS)
		}
		if r.HostStepUS > 0 {
			host = fmt.Sprintf("%.0f", r.HostStepUS)
		}
		if m, ok := mha[point{r.Cache, r.Batch, r.Beam, r.Context}]; ok && r.StepUS > 0 {
			vs = fmt.Sprintf("%.2f×", m/r.StepUS)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%.1f\t%.2f\t%s\t%s\t%s\t%.0f\t%.1f\t%.2f\t%d\t%d\t%s\t\n", r.Attn, r.KVHeads, r.Cache,
			r.Batch, r.Beam, r.Context, r.StepUS, r.TokenUS, enc, host, infer.FormatBytes(r.StepBytes), r.GBps, r.FloorUS, r.OverFloor, r.Kernels, r.Splits, vs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintln(w, "skipped (memory):", s)
	}
	return nil
}
