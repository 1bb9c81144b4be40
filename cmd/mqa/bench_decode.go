package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"mqa/cuda"
	"mqa/infer"
	"mqa/infer/decodebench"
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
	spec := infer.BenchSpec{Preset: *preset, Task: *task, Vocab: *vocab, Steps: *steps, NoCache: *noCache, Seed: *seed}
	for _, a := range strings.Split(*attn, ",") {
		spec.Attn = append(spec.Attn, strings.TrimSpace(a))
	}
	maxLen, err := decodebench.Spec{BenchSpec: spec}.Check()
	if err != nil {
		return fmt.Errorf("bench decode: %v: %w", err, errUsage)
	}
	for _, l := range []struct {
		name, value string
		dst         *[]int
	}{{"batch", *batches, &spec.Batches}, {"context", *contexts, &spec.Contexts}, {"beam", *beams, &spec.Beams}} {
		if *l.dst, err = intList(l.name, l.value); err != nil {
			return err
		}
	}
	if *device == "cuda" {
		return runBenchDecodeCUDA(spec, *caches, cuda.DecodeOptions{Math: *mathMode, Kernel: *kernel, Splits: *splits}, *hostSteps, *asJSON)
	}
	if *device != "cpu" {
		return fmt.Errorf("bench decode: -device %q (allowed: cpu, cuda): %w", *device, errUsage)
	}
	if err := spec.Validate(maxLen); err != nil {
		return fmt.Errorf("%v: %w", err, errUsage)
	}
	return printDecodeBench(decodebench.Spec{BenchSpec: spec, Device: "cpu"}, *asJSON)
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
	s := decodebench.Spec{BenchSpec: spec, Device: "cuda", Options: opt, HostSteps: hostSteps}
	for _, c := range strings.Split(caches, ",") {
		s.Caches = append(s.Caches, strings.TrimSpace(c))
	}
	for _, c := range s.Caches {
		opt.Cache = c
		if err := opt.Validate(); err != nil {
			return fmt.Errorf("bench decode: %v: %w", err, errUsage)
		}
	}
	if hostSteps < 0 {
		return fmt.Errorf("bench decode: -host-steps %d must not be negative: %w", hostSteps, errUsage)
	}
	return printDecodeBench(s, asJSON)
}

// printDecodeBench runs the benchmark, with progress on standard error, and prints its
// result: a table, or indented JSON.
func printDecodeBench(s decodebench.Spec, asJSON bool) error {
	res, err := decodebench.Run(s, os.Stderr)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res.JSON())
	}
	return res.WriteText(os.Stdout)
}
