package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"mqa/layers/blas"
	"os"
	"strconv"
	"strings"
	"time"

	"mqa/infer/study"
	"mqa/layers"
	"mqa/models"
	"mqa/train"
)

func init() {
	benchmarks["train"] = command{"training throughput (tokens/s, TFLOP/s) and peak GPU memory of an LM or a translation model on cpu or cuda", runBenchTrain}
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

// translateFLOPs counts the multiply-adds ×2 of one training step (forward ×3) of an
// encoder–decoder on one batch shape: the encoder's weight products per source token, the
// decoder's (self-attention, cross-attention queries and output, feed-forward, head) per
// target token, the cross-attention keys and values per source token, and the attention
// products over S×S (encoder), T×T and T×S (decoder) scores.
func translateFLOPs(cfg models.Config, s models.Shape) float64 {
	d, hk, kv := float64(cfg.Dim), float64(cfg.Heads*cfg.HeadDim), float64(cfg.KVHeads*cfg.HeadDim)
	ff := float64(cfg.FFDim)
	b, src, tgt := float64(s.Batch), float64(s.SrcLen), float64(s.TgtLen)
	self := d*hk + 2*d*kv + hk*d
	enc := float64(cfg.EncoderLayers) * (self + 2*d*ff) * b * src
	dec := float64(cfg.Layers)*((self+d*hk+hk*d+2*d*ff)*b*tgt+2*d*kv*b*src) + d*float64(cfg.Vocab)*b*tgt
	attn := 2 * 2 * b * hk * (float64(cfg.EncoderLayers)*src*src + float64(cfg.Layers)*(tgt*tgt+tgt*src))
	return 3 * (2*(enc+dec) + attn)
}

// parseShapes reads -shapes: comma-separated BxSxT (batch × source length × target
// length), each at least 1 and the lengths at most maxLen.
func parseShapes(spec string, maxLen int) ([]models.Shape, error) {
	var out []models.Shape
	for _, part := range strings.Split(spec, ",") {
		f := strings.Split(strings.TrimSpace(part), "x")
		var n [3]int
		ok := len(f) == 3
		for i := 0; ok && i < 3; i++ {
			v, err := strconv.Atoi(f[i])
			n[i], ok = v, err == nil && v >= 1
		}
		if !ok {
			return nil, fmt.Errorf("bench train: -shapes %q: %q is not BxSxT (batch × source length × target length, positive integers): %w", spec, part, errUsage)
		}
		if n[1] > maxLen || n[2] > maxLen {
			return nil, fmt.Errorf("bench train: -shapes %q: %q is longer than the preset's max_len %d: %w", spec, part, maxLen, errUsage)
		}
		out = append(out, models.Shape{Batch: n[0], SrcLen: n[1], TgtLen: n[2]})
	}
	return out, nil
}

func runBenchTrain(args []string) (err error) {
	fs := newFlags("bench train", "[flags]")
	task := fs.String("task", models.TaskLM, "lm (one batch shape -batch × -seq) or translate (an encoder–decoder over -shapes)")
	device := fs.String("device", "cuda", "cpu or cuda")
	preset := fs.String("preset", "base", "model size preset")
	attn := fs.String("attn", "mha", "mha, mqa or gqa:G (mqa/gqa widen d_ff to match the parameters)")
	batch := fs.Int("batch", 32, "lm: sequences per step")
	seq := fs.Int("seq", 256, "lm: tokens per sequence")
	vocab := fs.Int("vocab", 8192, "vocabulary size (translate: shared by source and target)")
	steps := fs.Int("steps", 30, "lm: timed steps")
	warmup := fs.Int("warmup", 5, "lm: untimed steps first")
	shapes := fs.String("shapes", "", "translate: batch shapes BxSxT (batch × source length × target length), comma-separated, one step each in order")
	repeat := fs.Int("repeat", 2, "translate: times the shapes are visited; the last visit is timed")
	tf32 := fs.Bool("tf32", false, "TF32 matrix products (cuda)")
	bf16 := fs.Bool("bf16", false, "BF16 matrix products (cuda): bf16 copies of the weights and GEMM inputs, FP32 accumulation, FP32 master weights")
	graphs := fs.Bool("graphs", false, "capture the step into a CUDA graph (cuda)")
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
	ranks, err := checkRanks(*device)
	if err != nil {
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
	cfg, err := benchTrainConfig(fs, *task, *preset, *attn, *vocab, *seq)
	if err != nil {
		return err
	}
	var list []models.Shape
	switch {
	case *task == models.TaskLM && (*steps < 1 || *warmup < 0):
		return fmt.Errorf("bench train: -steps %d must be positive and -warmup %d not negative: %w", *steps, *warmup, errUsage)
	case *task == models.TaskTranslate && *shapes == "":
		return fmt.Errorf("bench train: -task translate needs -shapes (e.g. 32x64x64,16x128x128): %w", errUsage)
	case *task == models.TaskTranslate && *repeat < 1:
		return fmt.Errorf("bench train: -repeat %d must be positive: %w", *repeat, errUsage)
	case *task == models.TaskTranslate:
		if list, err = parseShapes(*shapes, cfg.MaxLen); err != nil {
			return err
		}
	}
	mathMode := mathModeOf(*tf32, *bf16)
	os.Setenv("MQA_CUDA_MATH", mathMode)
	if *graphs {
		os.Setenv("MQA_CUDA_GRAPHS", "1")
	}
	var res benchTrainResult
	if *task == models.TaskLM {
		res, err = benchTrainLM(cfg, *device, ranks, *batch, *seq, *warmup, *steps)
	} else {
		res, err = benchTrainTranslate(cfg, *device, ranks, list, *repeat)
	}
	if err != nil {
		return err
	}
	var sgemm float64 // GFLOP/s of the BLAS in use on 512×512 products, measured now
	if *device == "cpu" {
		sgemm = blas.SgemmRate(512, time.Second)
	}
	fields := map[string]any{
		"impl": "mqa-go", "device": *device, "preset": *preset, "attn": *attn, "kv_heads": cfg.KVHeads, "ff_dim": cfg.FFDim,
		"vocab": cfg.Vocab, "math": mathMode, "cuda_graphs": *graphs, "steps": res.timedSteps, "ranks": ranks,
		"params": cfg.ParamCount(), "ms_per_step": res.perStep * 1e3, "tokens_per_s": res.tokens / res.perStep,
		"flops_per_step": res.flops, "tflops": res.flops / res.perStep / 1e12, "loss_first": res.first, "loss_last": res.last,
	}
	if *device == "cpu" {
		fields["blas"], fields["sgemm_gflops"] = blas.Name(), sgemm
	}
	peak := ""
	if res.peakOK {
		fields["peak_gpu_bytes"] = res.peak
		peak = ", peak GPU memory " + study.GiB(res.peak)
	}
	var what string
	if *task == models.TaskLM {
		fields["batch"], fields["seq"] = *batch, *seq
		what = fmt.Sprintf("batch %d×%d", *batch, *seq)
	} else {
		fields["task"], fields["shapes"], fields["shape_list"], fields["repeat"] = *task, len(list), shapeList(list), *repeat
		what = fmt.Sprintf("translate %d shapes ×%d", len(list), *repeat)
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(fields)
	}
	if ranks > 1 {
		what += fmt.Sprintf(" on %d ranks", ranks)
	}
	if *device == "cpu" {
		fmt.Printf("train cpu %s %s %s, BLAS %s: %.2f ms/step, %.0f tokens/s, %.1f GFLOP/s of model FLOPs; SGEMM 512³ %.1f GFLOP/s (loss %.3f → %.3f)\n",
			*preset, *attn, what, blas.Name(), res.perStep*1e3, res.tokens/res.perStep, res.flops/res.perStep/1e9, sgemm, res.first, res.last)
		return nil
	}
	fmt.Printf("train %s %s %s %s math %s graphs %v: %.2f ms/step, %.0f tokens/s, %.1f TFLOP/s (loss %.3f → %.3f)%s\n",
		*device, *preset, *attn, what, mathMode, *graphs, res.perStep*1e3, res.tokens/res.perStep, res.flops/res.perStep/1e12, res.first, res.last, peak)
	return nil
}

// benchTrainResult is what a timed training run measured: seconds per timed step, the
// decoder tokens and FLOPs of a mean timed step, the first and last losses, and the peak
// device memory (peakOK false on the CPU).
type benchTrainResult struct {
	timedSteps         int
	perStep, tokens    float64
	flops, first, last float64
	peak               int64
	peakOK             bool
}

// benchTrainLM trains an LM on random batches of one shape, warmup steps untimed and then
// steps timed; on ranks data-parallel ranks each step trains one batch per rank.
func benchTrainLM(cfg models.Config, device string, ranks, batch, seq, warmup, steps int) (benchTrainResult, error) {
	s := train.DefaultSettings(warmup + steps)
	s.Accum = ranks
	tr, err := train.NewTrainerRanks(cfg, nil, s, device, ranks)
	if err != nil {
		return benchTrainResult{}, err
	}
	defer tr.Close()
	r := rand.New(rand.NewPCG(1, 2))
	shape := models.Shape{Batch: batch, TgtLen: seq}
	mk := func() train.Batch {
		b := train.Batch{Shape: shape}
		for i := 0; i < batch*seq; i++ {
			b.Tokens = append(b.Tokens, 1+r.IntN(cfg.Vocab-1))
			b.Targets = append(b.Targets, 1+r.IntN(cfg.Vocab-1))
		}
		return b
	}
	data := make([]train.Batch, 2*ranks)
	for i := range data {
		data[i] = mk()
	}
	res := benchTrainResult{timedSteps: steps, tokens: float64(ranks * batch * seq), flops: float64(ranks) * trainFLOPs(cfg, batch, seq)}
	var start time.Time
	for i := 0; i < warmup+steps; i++ {
		if i == warmup {
			start = time.Now()
		}
		k := i % 2 * ranks
		st, err := tr.TrainStep(data[k : k+ranks])
		if err != nil {
			return res, err
		}
		if i == 0 {
			res.first = st.Loss
		}
		res.last = st.Loss
	}
	res.perStep = time.Since(start).Seconds() / float64(steps)
	res.peak, res.peakOK = tr.PeakMemory()
	return res, nil
}

// randomTranslationBatch fills a batch of the given shape with random token ids in
// 1..vocab−1 and some padding: each row's source and target lengths are drawn from the
// upper half of the shape's lengths (the first row's are full), the rest is the pad id.
func randomTranslationBatch(r *rand.Rand, s models.Shape, vocab int) train.Batch {
	b := train.Batch{Shape: s, Src: make([]int, s.Batch*s.SrcLen), SrcLens: make([]int, s.Batch),
		Tokens: make([]int, s.Batch*s.TgtLen), Targets: make([]int, s.Batch*s.TgtLen)}
	length := func(row, n int) int {
		if row == 0 {
			return n
		}
		return n - r.IntN(n/2+1)
	}
	for i := 0; i < s.Batch; i++ {
		b.SrcLens[i] = length(i, s.SrcLen)
		for j := 0; j < b.SrcLens[i]; j++ {
			b.Src[i*s.SrcLen+j] = 1 + r.IntN(vocab-1)
		}
		for j, n := 0, length(i, s.TgtLen); j < n; j++ {
			b.Tokens[i*s.TgtLen+j] = 1 + r.IntN(vocab-1)
			b.Targets[i*s.TgtLen+j] = 1 + r.IntN(vocab-1)
		}
	}
	return b
}

// benchTrainTranslate trains a translation model (label smoothing 0.1) one step per shape,
// visiting the shapes in order repeat times, each on random batches of its shape, one per
// data-parallel rank; the device memory is set aside for the largest shape first, as mqa
// train does, and the last visit is timed.
func benchTrainTranslate(cfg models.Config, device string, ranks int, shapes []models.Shape, repeat int) (benchTrainResult, error) {
	s := train.DefaultSettings(repeat * len(shapes))
	s.LabelSmoothing, s.Accum = 0.1, ranks
	tr, err := train.NewTrainerRanks(cfg, nil, s, device, ranks)
	if err != nil {
		return benchTrainResult{}, err
	}
	defer tr.Close()
	if err := tr.Reserve(shapes, nil); err != nil {
		return benchTrainResult{}, err
	}
	r := rand.New(rand.NewPCG(1, 2))
	data := make([][]train.Batch, len(shapes))
	res := benchTrainResult{timedSteps: len(shapes)}
	for i, sh := range shapes {
		for range ranks {
			data[i] = append(data[i], randomTranslationBatch(r, sh, cfg.Vocab))
		}
		res.tokens += float64(ranks*sh.Batch*sh.TgtLen) / float64(len(shapes))
		res.flops += float64(ranks) * translateFLOPs(cfg, sh) / float64(len(shapes))
	}
	var start time.Time
	for visit := 0; visit < repeat; visit++ {
		if visit == repeat-1 {
			start = time.Now()
		}
		for i := range data {
			st, err := tr.TrainStep(data[i])
			if err != nil {
				return res, fmt.Errorf("shape %dx%dx%d: %w", shapes[i].Batch, shapes[i].SrcLen, shapes[i].TgtLen, err)
			}
			if visit == 0 && i == 0 {
				res.first = st.Loss
			}
			res.last = st.Loss
		}
	}
	res.perStep = time.Since(start).Seconds() / float64(len(shapes))
	res.peak, res.peakOK = tr.PeakMemory()
	return res, nil
}

// benchTrainConfig checks that the given flags belong to the task and makes the benchmark's
// model: the preset with the attention kind (parameter-matched); for an LM, learned
// positions, an untied head and no dropout, with max_len seq.
func benchTrainConfig(fs *flag.FlagSet, task, preset, attn string, vocab, seq int) (models.Config, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var other []string
	switch task {
	case models.TaskLM:
		other = []string{"shapes", "repeat"}
	case models.TaskTranslate:
		other = []string{"batch", "seq", "steps", "warmup"}
	default:
		return models.Config{}, fmt.Errorf("bench train: -task %q (allowed: lm, translate): %w", task, errUsage)
	}
	for _, name := range other {
		if given[name] {
			return models.Config{}, fmt.Errorf("bench train: -%s does not apply to -task %s: %w", name, task, errUsage)
		}
	}
	if vocab < 4 || vocab > 1<<20 {
		return models.Config{}, fmt.Errorf("bench train: -vocab %d must be in 4..%d: %w", vocab, 1<<20, errUsage)
	}
	cfg, err := models.Preset(preset, task, vocab)
	if err != nil {
		return models.Config{}, fmt.Errorf("bench train: %v: %w", err, errUsage)
	}
	kv, err := models.ParseAttention(attn, cfg.Heads)
	if err != nil {
		return models.Config{}, fmt.Errorf("bench train: %v: %w", err, errUsage)
	}
	if task == models.TaskLM {
		// The benchmark model: pre-norm, ReLU FFN, learned positions, untied head, no dropout.
		cfg.Positions, cfg.TieEmbeddings, cfg.Dropout, cfg.MaxLen = layers.PosLearned, false, 0, seq
	}
	return cfg.WithKVHeads(kv, kv != cfg.Heads)
}

// mathModeOf is the GPU math mode the -tf32 and -bf16 flags ask for (bf16 wins).
func mathModeOf(tf32, bf16 bool) string {
	switch {
	case bf16:
		return "bf16"
	case tf32:
		return "tf32"
	}
	return "fp32"
}
