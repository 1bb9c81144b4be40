package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"mqa/layers/blas"
	"mqa/models"
	"mqa/train/trainbench"
)

func init() {
	benchmarks["train"] = command{"training throughput (tokens/s, TFLOP/s) and peak GPU memory of an LM or a translation model on cpu or cuda", runBenchTrain}
}

func runBenchTrain(args []string) error {
	fs := newFlags("bench train", "[flags]")
	s := trainbench.Spec{}
	fs.StringVar(&s.Task, "task", models.TaskLM, "lm (one batch shape -batch × -seq) or translate (an encoder–decoder over -shapes)")
	fs.StringVar(&s.Device, "device", "cuda", "cpu or cuda")
	fs.StringVar(&s.Preset, "preset", "base", "model size preset")
	fs.StringVar(&s.Attn, "attn", "mha", "mha, mqa or gqa:G (mqa/gqa widen d_ff to match the parameters)")
	fs.IntVar(&s.Batch, "batch", 32, "lm: sequences per step")
	fs.IntVar(&s.Seq, "seq", 256, "lm: tokens per sequence")
	vocab := fs.Int("vocab", 8192, "vocabulary size (translate: shared by source and target)")
	fs.IntVar(&s.Steps, "steps", 30, "lm: timed steps")
	fs.IntVar(&s.Warmup, "warmup", 5, "lm: untimed steps first")
	shapes := fs.String("shapes", "", "translate: batch shapes BxSxT (batch × source length × target length), comma-separated, one step each in order")
	fs.IntVar(&s.Repeat, "repeat", 2, "translate: times the shapes are visited; the last visit is timed")
	tf32 := fs.Bool("tf32", false, "TF32 matrix products (cuda)")
	bf16 := fs.Bool("bf16", false, "BF16 matrix products (cuda): bf16 copies of the weights and GEMM inputs, FP32 accumulation, FP32 master weights")
	fs.BoolVar(&s.Graphs, "graphs", false, "capture the step into a CUDA graph (cuda)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	gpuMemory := gpuMemoryFlag(fs)
	prof := profileFlags(fs)
	checkRanks := ranksFlags(fs)
	fs.Lookup("gpus").Usage = "GPUs, data-parallel (weak scaling): each runs a batch of the step's size, so a step trains N batches"
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := gpuMemory(); err != nil {
		return err
	}
	if err := blas.Err(); err != nil {
		return err
	}
	var err error
	if s.Ranks, err = checkRanks(s.Device); err != nil {
		return err
	}
	return prof.around(func() error {
		if err := checkBenchTrainFlags(fs, &s, *vocab, *shapes); err != nil {
			return err
		}
		s.Math = trainbench.MathMode(*tf32, *bf16)
		res, err := trainbench.Run(s)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(os.Stdout).Encode(res.Fields())
		}
		fmt.Println(res.Summary())
		return nil
	})
}

// checkBenchTrainFlags checks that the given flags belong to the task and prepares the
// benchmark (trainbench.Spec.Prepare: its model and, for a translation model, -shapes).
func checkBenchTrainFlags(fs *flag.FlagSet, s *trainbench.Spec, vocab int, shapes string) error {
	given := setFlags(fs)
	var other []string
	switch s.Task {
	case models.TaskLM:
		other = []string{"shapes", "repeat"}
	case models.TaskTranslate:
		other = []string{"batch", "seq", "steps", "warmup"}
	default:
		return fmt.Errorf("bench train: -task %q (allowed: lm, translate): %w", s.Task, errUsage)
	}
	for _, name := range other {
		if given[name] {
			return fmt.Errorf("bench train: -%s does not apply to -task %s: %w", name, s.Task, errUsage)
		}
	}
	if err := s.Prepare(vocab, shapes); err != nil {
		return fmt.Errorf("bench train: %v: %w", err, errUsage)
	}
	return nil
}
