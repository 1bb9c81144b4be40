package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"time"

	"mqa/cuda"
	"mqa/infer"
	"mqa/layers"
	"mqa/models"
)

func init() {
	commands["generate"] = command{"continue a prompt with a language model (cached K/V decoding)", runGenerate}
}

func runGenerate(args []string) error {
	fs := newFlags("generate", "-ckpt DIR [-prompt TEXT] [-n K -max N -temperature T -topk K -topp P -seed S -nocache -device cpu|cuda]\n\n"+
		"Without -prompt, each line of standard input is a prompt. Each sample is printed on a line of its own\n"+
		"(a line break inside one as a space), the K samples of a prompt together, prompts in order.")
	ckpt := fs.String("ckpt", "", "checkpoint directory (or a run directory: its newest complete checkpoint)")
	prompt := fs.String("prompt", "", "text to continue (empty: start a new document; absent: one prompt per line of standard input)")
	samples := fs.Int("n", 1, "samples per prompt (sample k uses seed S+k)")
	maxNew := fs.Int("max", 100, "most new tokens (generation also stops at end-of-document and at the model's max_len)")
	temp := fs.Float64("temperature", 0, "sampling temperature; 0 is greedy search")
	topK := fs.Int("topk", 0, "sample from the K most likely tokens only (0: all)")
	topP := fs.Float64("topp", 0, "sample from the smallest set of tokens with probability ≥ P only (0 or 1: all)")
	seed := fs.Uint64("seed", 1, "random seed of the sampler (same seed, same text)")
	noCache := fs.Bool("nocache", false, "recompute the whole sequence at every step instead of caching keys and values")
	device := fs.String("device", "cpu", "cpu, or cuda (a build with -tags mqacuda: cached decoding on the GPU)")
	cache := fs.String("cache", "fp32", "cuda: K/V cache type, fp32 or bf16")
	allowNonFinite := fs.Bool("allow-nonfinite", false, "load weights that hold NaN or infinite values (refused by default)")
	gpuMemory := gpuMemoryFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := gpuMemory(); err != nil {
		return err
	}
	if *ckpt == "" {
		return fmt.Errorf("generate: -ckpt is required: %w", errUsage)
	}
	if *maxNew < 1 || *samples < 1 {
		return fmt.Errorf("generate: -max %d and -n %d must be at least 1: %w", *maxNew, *samples, errUsage)
	}
	opt := infer.Sampling{Temperature: *temp, TopK: *topK, TopP: *topP, Seed: *seed}
	if err := opt.Validate(); err != nil {
		return fmt.Errorf("generate: %v: %w", err, errUsage)
	}
	if err := checkDevice("generate", *device); err != nil {
		return err
	}
	m, err := infer.LoadWith(*ckpt, models.LoadOptions{AllowNonFinite: *allowNonFinite})
	if err != nil {
		return err
	}
	b, err := decodeBackend("generate", m.Cfg, m.Params, *device, *cache, *noCache)
	if err != nil {
		return err
	}
	defer infer.CloseBackend(b)
	prompts := []string{*prompt}
	if !setFlags(fs)["prompt"] {
		if prompts, err = readLinesArg("-"); err != nil {
			return err
		}
	}
	start := time.Now()
	w := bufio.NewWriter(os.Stdout)
	if err := infer.GenerateSamples(b, m.Tok, prompts, *samples, *maxNew, opt, func(s string) { fmt.Fprintln(w, s) }); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("generate: writing the output: %w", err)
	}
	mode := "cached"
	if *noCache {
		mode = "no cache"
	}
	fmt.Fprintf(os.Stderr, "generate: %d prompts × %d samples, %s (%s, %s, %s) in %.2fs\n", len(prompts), *samples, m.Dir, m.Cfg.AttentionName(), mode, *device, time.Since(start).Seconds())
	return nil
}

// decodeBackend is the decoding backend of -device (already checked by checkDevice): the CPU,
// or the GPU of package cuda (a build with -tags mqacuda), whose options are checked here
// so that a bad -cache or -nocache is a usage error.
func decodeBackend(cmd string, cfg models.Config, params *layers.Params, device, cache string, noCache bool) (infer.Backend, error) {
	opt := infer.BackendOptions{NoCache: noCache, Cache: cache}
	if device == "cuda" {
		if noCache {
			return nil, fmt.Errorf("%s: -nocache is CPU only: %w", cmd, errUsage)
		}
		if _, err := cuda.BackendDecodeOptions(opt); err != nil {
			return nil, fmt.Errorf("%s: %v: %w", cmd, err, errUsage)
		}
	}
	return infer.NewBackend(device, cfg, params, opt)
}

// gpuBuilt says whether this build has the GPU backend (-tags mqacuda).
func gpuBuilt() bool { return slices.Contains(infer.Backends(), "cuda") }

// checkDevice refuses a -device this build cannot run, before anything is loaded.
func checkDevice(cmd, device string) error {
	switch {
	case device == "cuda" && !gpuBuilt():
		return fmt.Errorf("%s: %w", cmd, cuda.ErrNoGPUBuild)
	case device != "cpu" && device != "cuda":
		return fmt.Errorf("%s: -device %q (allowed: cpu, cuda): %w", cmd, device, errUsage)
	}
	return nil
}
