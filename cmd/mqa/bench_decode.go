package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

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
	fs := newFlags("bench decode", "[-preset small -task lm|translate -attn mha,gqa:2,mqa -batch 1,8 -context 32,96 -steps 16 -nocache -json]")
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
	if err := parse(fs, args); err != nil {
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
