package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"

	"mqa/cuda"
	"mqa/infer"
	"mqa/models"
)

func init() {
	benchmarks["decode"] = command{"incremental decoding: MHA vs GQA vs MQA, cached vs uncached, µs per token and bytes per step", runBenchDecode}
}

// intList parses "1,8,32".
func intList(name, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("bench decode: -%s %q: want positive integers separated by commas: %w", name, s, errUsage)
		}
		out = append(out, v)
	}
	return out, nil
}

func runBenchDecode(args []string) error {
	fs := newFlags("bench decode", "[-device cpu|cuda -preset small -task lm|translate -attn mha,gqa:2,mqa -batch 1,8 -context 32,96 -steps 16 -nocache -json]")
	device := fs.String("device", "cpu", "cpu or cuda (a build with -tags mqacuda); cuda times the captured step with the greedy choice on the GPU")
	caches := fs.String("cache", "fp32", "cuda: K/V cache types to measure, comma-separated (fp32, bf16)")
	mathMode := fs.String("math", "fp32", "cuda: GEMM arithmetic: fp32, tf32 or bf16 (bf16 copies of the weights and GEMM inputs, FP32 accumulation)")
	kernel := fs.String("kernel", "fast", "cuda: decode-attention kernel: fast (tensor cores where they apply), simt (CUDA cores) or ref")
	splits := fs.Int("splits", 0, "cuda: key-range splits per sequence and K/V head of the decode attention (0: planned; 1…64)")
	hostSteps := fs.Int("host-steps", 0, "cuda: also time this many host-driven search steps (GPU ranking, candidates back, beam reorder)")
	preset := fs.String("preset", "small", "model size: "+strings.Join(models.Presets(), ", ")+" (random weights)")
	task := fs.String("task", "lm", "lm or translate")
	vocab := fs.Int("vocab", 8192, "vocabulary size")
	attn := fs.String("attn", "mha,gqa:2,mqa", "attention variants, parameter-matched to MHA by widening d_ff")
	batches := fs.String("batch", "1,8", "batch sizes (sequences decoded together)")
	contexts := fs.String("context", "32,96", "tokens already in the cache (translation: also the source length)")
	beams := fs.String("beam", "1,4", "translation: beam sizes")
	steps := fs.Int("steps", 16, "decode steps timed per point")
	noCache := fs.Bool("nocache", false, "also time the uncached step (full recomputation) and print the speed-up")
	seed := fs.Uint64("seed", 1, "seed of the random weights and tokens")
	asJSON := fs.Bool("json", false, "print JSON instead of the table")
	gpuMemory := gpuMemoryFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := gpuMemory(); err != nil {
		return err
	}
	if *task != models.TaskLM && *task != models.TaskTranslate {
		return fmt.Errorf("bench decode: -task %q (allowed: lm, translate): %w", *task, errUsage)
	}
	if *vocab < 4 || *vocab > 1<<20 {
		return fmt.Errorf("bench decode: -vocab %d must be in 4..%d: %w", *vocab, 1<<20, errUsage)
	}
	spec := infer.BenchSpec{Preset: *preset, Task: *task, Vocab: *vocab, Steps: *steps, NoCache: *noCache, Seed: *seed}
	for _, a := range strings.Split(*attn, ",") {
		spec.Attn = append(spec.Attn, strings.TrimSpace(a))
	}
	var err error
	if spec.Batches, err = intList("batch", *batches); err != nil {
		return err
	}
	if spec.Contexts, err = intList("context", *contexts); err != nil {
		return err
	}
	if spec.Beams, err = intList("beam", *beams); err != nil {
		return err
	}
	base, err := models.Preset(spec.Preset, spec.Task, spec.Vocab)
	if err != nil {
		return fmt.Errorf("bench decode: %v: %w", err, errUsage)
	}
	for _, a := range spec.Attn {
		if _, err := models.ParseAttention(a, base.Heads); err != nil {
			return fmt.Errorf("bench decode: %v: %w", err, errUsage)
		}
	}
	if *device == "cuda" {
		return runBenchDecodeCUDA(spec, *caches, cuda.DecodeOptions{Math: *mathMode, Kernel: *kernel, Splits: *splits}, *hostSteps, *asJSON)
	}
	if *device != "cpu" {
		return fmt.Errorf("bench decode: -device %q (allowed: cpu, cuda): %w", *device, errUsage)
	}
	if err := spec.Validate(base.MaxLen); err != nil {
		return fmt.Errorf("%v: %w", err, errUsage)
	}
	rows, err := infer.Bench(spec, os.Stderr)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"preset": spec.Preset, "task": spec.Task, "vocab": spec.Vocab, "steps": spec.Steps,
			"cpus": runtime.NumCPU(), "device": "cpu", "rows": rows})
	}
	fmt.Printf("decode benchmark: preset %s, task %s, vocab %d, %d steps per point, CPU (%d cores), float32, random weights\n",
		spec.Preset, spec.Task, spec.Vocab, spec.Steps, runtime.NumCPU())
	return infer.WriteBenchTable(os.Stdout, rows)
}

// runBenchDecodeCUDA is `mqa bench decode -device cuda`: the GPU benchmark of package cuda
// (contexts may exceed the preset's max_len: the benchmark model's max_len is raised to fit).
// opt gives the math, kernel and splits; caches the cache types to measure.
func runBenchDecodeCUDA(spec infer.BenchSpec, caches string, opt cuda.DecodeOptions, hostSteps int, asJSON bool) error {
	if !gpuBuilt() {
		return fmt.Errorf("bench decode: %w", cuda.ErrNoGPUBuild)
	}
	if spec.NoCache {
		return fmt.Errorf("bench decode: -nocache is CPU only: %w", errUsage)
	}
	gs := cuda.DecodeBenchSpec{Preset: spec.Preset, Task: spec.Task, Vocab: spec.Vocab, Attn: spec.Attn, Batches: spec.Batches,
		Contexts: spec.Contexts, Beams: spec.Beams, Steps: spec.Steps, HostSteps: hostSteps, Seed: spec.Seed, Math: opt.Math, Kernel: opt.Kernel, Splits: opt.Splits}
	for _, c := range strings.Split(caches, ",") {
		gs.Caches = append(gs.Caches, strings.TrimSpace(c))
	}
	for _, c := range gs.Caches {
		opt.Cache = c
		if err := opt.Validate(); err != nil {
			return fmt.Errorf("bench decode: %v: %w", err, errUsage)
		}
	}
	if hostSteps < 0 {
		return fmt.Errorf("bench decode: -host-steps %d must not be negative: %w", hostSteps, errUsage)
	}
	res, err := cuda.RunDecodeBench(gs, os.Stderr)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"preset": spec.Preset, "task": spec.Task, "vocab": spec.Vocab, "steps": spec.Steps,
			"device": "cuda", "gpu": res.Device, "copy_gbps": res.CopyGBps, "read_gbps": res.ReadGBps, "floor_bandwidth": res.FloorBW,
			"rows": res.Rows, "skipped": res.Skipped})
	}
	weights := "fp32"
	if opt.Math == "bf16" {
		weights = "fp32 with bf16 copies for the GEMMs"
	}
	fmt.Printf("decode benchmark: preset %s, task %s, vocab %d, %d replayed steps per point, %s; weights %s, GEMMs %s\n",
		spec.Preset, spec.Task, spec.Vocab, spec.Steps, res.Device, weights, opt.Math)
	fmt.Printf("bandwidth measured in this run: copy %.0f GB/s, read %.0f GB/s; floor = bytes/step over the higher (%s)\n",
		res.CopyGBps, res.ReadGBps, res.FloorBW)
	return writeGPUDecodeTable(os.Stdout, res.Rows, res.Skipped)
}

// writeGPUDecodeTable prints the GPU rows with each point's speed-up over MHA.
func writeGPUDecodeTable(w io.Writer, rows []cuda.DecodeBenchRow, skipped []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "attn\tkv\tcache\tbatch\tbeam\tcontext\tµs/step\tµs/token\tenc µs/token\tsearch µs/step\tbytes/step\tGB/s\tfloor µs\t× floor\tkernels\tsplits\tMHA/this\t")
	type pt struct {
		cache                string
		batch, beam, context int
	}
	mha := map[pt]float64{}
	for _, r := range rows {
		if r.KVHeads > 0 && r.Attn == "mha" {
			mha[pt{r.Cache, r.Batch, r.Beam, r.Context}] = r.StepUS
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
		if m, ok := mha[pt{r.Cache, r.Batch, r.Beam, r.Context}]; ok && r.StepUS > 0 {
			vs = fmt.Sprintf("%.2f×", m/r.StepUS)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%.1f\t%.2f\t%s\t%s\t%s\t%.0f\t%.1f\t%.2f\t%d\t%d\t%s\t\n", r.Attn, r.KVHeads, r.Cache,
			r.Batch, r.Beam, r.Context, r.StepUS, r.TokenUS, enc, host, humanBytes(r.StepBytes), r.GBps, r.FloorUS, r.OverFloor, r.Kernels, r.Splits, vs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintln(w, "skipped (memory):", s)
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
