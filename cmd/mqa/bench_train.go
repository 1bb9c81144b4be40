package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"mqa/layers"
	"mqa/layers/blas"
	"mqa/models"
	"mqa/train"
)

func init() {
	benchmarks["train"] = command{"training throughput (tokens/s, TFLOP/s) of an LM on cpu or cuda", runBenchTrain}
}

// trainFLOPs counts the multiply-adds ×2 of one training step (forward ×3) of an LM: every
// matrix product with a weight, and the two attention products over all T×T scores.
func trainFLOPs(cfg models.Config, batch, seq int) float64 {
	d, hk, kv := float64(cfg.Dim), float64(cfg.Heads*cfg.HeadDim), float64(cfg.KVHeads*cfg.HeadDim)
	ff := float64(cfg.FFDim)
	perTok := float64(cfg.Layers)*(d*hk+2*d*kv+hk*d+2*d*ff) + d*float64(cfg.Vocab)
	tokens := float64(batch * seq)
	attn := float64(cfg.Layers) * 2 * 2 * float64(batch) * float64(seq) * float64(seq) * hk
	return 3 * (2*perTok*tokens + attn)
}

func runBenchTrain(args []string) (err error) {
	fs := newFlags("bench train", "[flags]")
	device := fs.String("device", "cuda", "cpu or cuda")
	preset := fs.String("preset", "base", "model size preset")
	attn := fs.String("attn", "mha", "mha, mqa or gqa:G (mqa/gqa widen d_ff to match the parameters)")
	batch := fs.Int("batch", 32, "sequences per step")
	seq := fs.Int("seq", 256, "tokens per sequence")
	vocab := fs.Int("vocab", 8192, "vocabulary size")
	steps := fs.Int("steps", 30, "timed steps")
	warmup := fs.Int("warmup", 5, "untimed steps first")
	tf32 := fs.Bool("tf32", false, "TF32 matrix products (cuda)")
	bf16 := fs.Bool("bf16", false, "BF16 matrix products (cuda): bf16 copies of the weights and GEMM inputs, FP32 accumulation, FP32 master weights")
	graphs := fs.Bool("graphs", false, "capture the step into a CUDA graph (cuda)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	prof := profileFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := blas.Err(); err != nil {
		return err
	}
	stop, err := prof.start()
	if err != nil {
		return err
	}
	defer func() {
		if serr := stop(); err == nil {
			err = serr
		}
	}()
	cfg, err := models.Preset(*preset, models.TaskLM, *vocab)
	if err != nil {
		return fmt.Errorf("bench train: %v: %w", err, errUsage)
	}
	kv, err := models.ParseAttention(*attn, cfg.Heads)
	if err != nil {
		return fmt.Errorf("bench train: %v: %w", err, errUsage)
	}
	// The benchmark model: pre-norm, ReLU FFN, learned positions, untied head, no dropout.
	cfg.Positions, cfg.TieEmbeddings, cfg.Dropout, cfg.MaxLen = layers.PosLearned, false, 0, *seq
	if cfg, err = cfg.WithKVHeads(kv, kv != cfg.Heads); err != nil {
		return err
	}
	mathMode := "fp32"
	switch {
	case *bf16:
		mathMode = "bf16"
	case *tf32:
		mathMode = "tf32"
	}
	os.Setenv("MQA_CUDA_MATH", mathMode)
	if *graphs {
		os.Setenv("MQA_CUDA_GRAPHS", "1")
	}
	s := train.DefaultSettings(*warmup + *steps)
	tr, err := train.NewTrainer(cfg, nil, s, *device)
	if err != nil {
		return err
	}
	defer tr.Close()
	r := rand.New(rand.NewPCG(1, 2))
	shape := models.Shape{Batch: *batch, TgtLen: *seq}
	mk := func() train.Batch {
		b := train.Batch{Shape: shape}
		for i := 0; i < *batch**seq; i++ {
			b.Tokens = append(b.Tokens, 1+r.IntN(cfg.Vocab-1))
			b.Targets = append(b.Targets, 1+r.IntN(cfg.Vocab-1))
		}
		return b
	}
	data := []train.Batch{mk(), mk()}
	var first, last float64
	var start time.Time
	for i := 0; i < *warmup+*steps; i++ {
		if i == *warmup {
			start = time.Now()
		}
		st, err := tr.TrainStep(data[i%2 : i%2+1])
		if err != nil {
			return err
		}
		if i == 0 {
			first = st.Loss
		}
		last = st.Loss
	}
	el := time.Since(start).Seconds()
	perStep := el / float64(*steps)
	flops := trainFLOPs(cfg, *batch, *seq)
	var sgemm float64 // GFLOP/s of the BLAS in use on 512×512 products, measured now
	if *device == "cpu" {
		sgemm = blas.SgemmRate(512, time.Second)
	}
	res := map[string]any{
		"impl": "mqa-go", "device": *device, "preset": *preset, "attn": *attn, "kv_heads": cfg.KVHeads, "ff_dim": cfg.FFDim,
		"batch": *batch, "seq": *seq, "vocab": cfg.Vocab, "math": mathMode, "cuda_graphs": *graphs, "steps": *steps,
		"params": cfg.ParamCount(), "ms_per_step": perStep * 1e3, "tokens_per_s": float64(*batch**seq) / perStep,
		"flops_per_step": flops, "tflops": flops / perStep / 1e12, "loss_first": first, "loss_last": last,
	}
	if *device == "cpu" {
		res["blas"], res["sgemm_gflops"] = blas.Name(), sgemm
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	if *device == "cpu" {
		fmt.Printf("train cpu %s %s batch %d×%d, BLAS %s: %.2f ms/step, %.0f tokens/s, %.1f GFLOP/s of model FLOPs; SGEMM 512³ %.1f GFLOP/s (loss %.3f → %.3f)\n",
			*preset, *attn, *batch, *seq, blas.Name(), perStep*1e3, float64(*batch**seq)/perStep, flops/perStep/1e9, sgemm, first, last)
		return nil
	}
	fmt.Printf("train %s %s %s batch %d×%d math %s graphs %v: %.2f ms/step, %.0f tokens/s, %.1f TFLOP/s (loss %.3f → %.3f)\n",
		*device, *preset, *attn, *batch, *seq, mathMode, *graphs, perStep*1e3, float64(*batch**seq)/perStep, flops/perStep/1e12, first, last)
	return nil
}
