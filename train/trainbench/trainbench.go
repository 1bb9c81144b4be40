// Package trainbench measures training throughput: tokens per second, model FLOP/s and the
// peak device memory of an LM on one batch shape, or of a translation model over a list of
// batch shapes, on random data (mqa bench train).
package trainbench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"mqa/layers"
	"mqa/layers/blas"
	"mqa/models"
	"mqa/train"
)

// Spec is one training benchmark (mqa bench train's flags fill it).
type Spec struct {
	Task          string         // models.TaskLM or models.TaskTranslate
	Preset, Attn  string         // for the report; the model is Model
	Model         models.Config  // made by Prepare (see Config)
	Device        string         // cpu or cuda
	Ranks         int            // data-parallel ranks; each trains a batch of the step's size
	Batch, Seq    int            // LM: the one batch shape
	Warmup, Steps int            // LM: untimed steps, then timed steps
	Shapes        []models.Shape // translation: one step each, in order
	Repeat        int            // translation: visits of the shapes; the last is timed
	Math          string         // GPU math mode: fp32, tf32 or bf16 (see MathMode)
	Graphs        bool           // capture the step into a CUDA graph
}

// Result is what a benchmark measured.
type Result struct {
	Spec
	TimedSteps  int
	PerStep     float64 // seconds per timed step
	Tokens      float64 // decoder tokens of a mean timed step
	FLOPs       float64 // model FLOPs of a mean timed step
	First, Last float64 // the first and last training losses
	Peak        int64   // peak device memory in bytes, when PeakOK (never on the CPU)
	PeakOK      bool
	BLAS        string  // CPU: the BLAS in use
	SGEMM       float64 // CPU: GFLOP/s of that BLAS on 512×512 products, measured after the run
}

// Config makes the benchmark's model: the preset with the attention kind (MQA/GQA
// parameter-matched to MHA by widening d_ff); for an LM pre-norm, ReLU feed-forward,
// learned positions, an untied head and no dropout, with max_len seq.
func Config(task, preset, attn string, vocab, seq int) (models.Config, error) {
	cfg, err := models.Preset(preset, task, vocab)
	if err != nil {
		return models.Config{}, err
	}
	kv, err := models.ParseAttention(attn, cfg.Heads)
	if err != nil {
		return models.Config{}, err
	}
	if task == models.TaskLM {
		cfg.Positions, cfg.TieEmbeddings, cfg.Dropout, cfg.MaxLen = layers.PosLearned, false, 0, seq
	}
	return cfg.WithKVHeads(kv, kv != cfg.Heads)
}

// Prepare makes the benchmark's model (Config) for a vocabulary of vocab tokens, checks the
// steps of an LM and reads the shapes list of a translation model (models.ParseShapes). Its
// errors name the flags of mqa bench train.
func (s *Spec) Prepare(vocab int, shapes string) error {
	if vocab < 4 || vocab > 1<<20 {
		return fmt.Errorf("-vocab %d must be in 4..%d", vocab, 1<<20)
	}
	var err error
	if s.Model, err = Config(s.Task, s.Preset, s.Attn, vocab, s.Seq); err != nil {
		return err
	}
	switch {
	case s.Task == models.TaskLM && (s.Steps < 1 || s.Warmup < 0):
		return fmt.Errorf("-steps %d must be positive and -warmup %d not negative", s.Steps, s.Warmup)
	case s.Task == models.TaskTranslate && shapes == "":
		return errors.New("-task translate needs -shapes (e.g. 32x64x64,16x128x128)")
	case s.Task == models.TaskTranslate && s.Repeat < 1:
		return fmt.Errorf("-repeat %d must be positive", s.Repeat)
	case s.Task == models.TaskTranslate:
		if s.Shapes, err = models.ParseShapes(shapes, s.Model.MaxLen); err != nil {
			return fmt.Errorf("-shapes %q: %w", shapes, err)
		}
	}
	return nil
}

// MathMode is the GPU math mode that flags for TF32 and BF16 ask for (BF16 wins).
func MathMode(tf32, bf16 bool) string {
	switch {
	case bf16:
		return "bf16"
	case tf32:
		return "tf32"
	}
	return "fp32"
}

// Run sets the GPU math mode and graph capture for this process (MQA_CUDA_MATH,
// MQA_CUDA_GRAPHS), trains s.Model on random batches and measures it.
func Run(s Spec) (Result, error) {
	os.Setenv("MQA_CUDA_MATH", s.Math)
	if s.Graphs {
		os.Setenv("MQA_CUDA_GRAPHS", "1")
	}
	var res Result
	var err error
	if s.Task == models.TaskLM {
		res, err = runLM(s)
	} else {
		res, err = runTranslate(s)
	}
	if err != nil {
		return res, err
	}
	res.Spec = s
	if s.Device == "cpu" {
		res.BLAS, res.SGEMM = blas.Name(), blas.SgemmRate(512, time.Second)
	}
	return res, nil
}

// Fields are the result as mqa bench train -json prints it.
func (r Result) Fields() map[string]any {
	fields := map[string]any{
		"impl": "mqa-go", "device": r.Device, "preset": r.Preset, "attn": r.Attn, "kv_heads": r.Model.KVHeads, "ff_dim": r.Model.FFDim,
		"vocab": r.Model.Vocab, "math": r.Math, "cuda_graphs": r.Graphs, "steps": r.TimedSteps, "ranks": r.Ranks,
		"params": r.Model.ParamCount(), "ms_per_step": r.PerStep * 1e3, "tokens_per_s": r.Tokens / r.PerStep,
		"flops_per_step": r.FLOPs, "tflops": r.FLOPs / r.PerStep / 1e12, "loss_first": r.First, "loss_last": r.Last,
	}
	if r.Device == "cpu" {
		fields["blas"], fields["sgemm_gflops"] = r.BLAS, r.SGEMM
	}
	if r.PeakOK {
		fields["peak_gpu_bytes"] = r.Peak
	}
	if r.Task == models.TaskLM {
		fields["batch"], fields["seq"] = r.Batch, r.Seq
	} else {
		fields["task"], fields["shapes"], fields["shape_list"], fields["repeat"] = r.Task, len(r.Shapes), models.FormatShapes(r.Shapes), r.Repeat
	}
	return fields
}

// Summary is the result in one line of text.
func (r Result) Summary() string {
	what := fmt.Sprintf("batch %d×%d", r.Batch, r.Seq)
	if r.Task == models.TaskTranslate {
		what = fmt.Sprintf("translate %d shapes ×%d", len(r.Shapes), r.Repeat)
	}
	if r.Ranks > 1 {
		what += fmt.Sprintf(" on %d ranks", r.Ranks)
	}
	if r.Device == "cpu" {
		return fmt.Sprintf("train cpu %s %s %s, BLAS %s: %.2f ms/step, %.0f tokens/s, %.1f GFLOP/s of model FLOPs; SGEMM 512³ %.1f GFLOP/s (loss %.3f → %.3f)",
			r.Preset, r.Attn, what, r.BLAS, r.PerStep*1e3, r.Tokens/r.PerStep, r.FLOPs/r.PerStep/1e9, r.SGEMM, r.First, r.Last)
	}
	peak := ""
	if r.PeakOK {
		peak = ", peak GPU memory " + train.GiB(r.Peak)
	}
	return fmt.Sprintf("train %s %s %s %s math %s graphs %v: %.2f ms/step, %.0f tokens/s, %.1f TFLOP/s (loss %.3f → %.3f)%s",
		r.Device, r.Preset, r.Attn, what, r.Math, r.Graphs, r.PerStep*1e3, r.Tokens/r.PerStep, r.FLOPs/r.PerStep/1e12, r.First, r.Last, peak)
}

// LMFLOPs counts the multiply-adds ×2 of one training step (forward ×3) of an LM: every
// matrix product with a weight, and the two attention products over all T×T scores.
func LMFLOPs(cfg models.Config, batch, seq int) float64 {
	d, hk, kv := float64(cfg.Dim), float64(cfg.Heads*cfg.HeadDim), float64(cfg.KVHeads*cfg.HeadDim)
	ff := float64(cfg.FFDim)
	perTok := float64(cfg.Layers)*(d*hk+2*d*kv+hk*d+2*d*ff) + d*float64(cfg.Vocab)
	tokens := float64(batch * seq)
	attn := float64(cfg.Layers) * 2 * 2 * float64(batch) * float64(seq) * float64(seq) * hk
	return 3 * (2*perTok*tokens + attn)
}

// TranslateFLOPs counts the multiply-adds ×2 of one training step (forward ×3) of an
// encoder–decoder on one batch shape: the encoder's weight products per source token, the
// decoder's (self-attention, cross-attention queries and output, feed-forward, head) per
// target token, the cross-attention keys and values per source token, and the attention
// products over S×S (encoder), T×T and T×S (decoder) scores.
func TranslateFLOPs(cfg models.Config, s models.Shape) float64 {
	d, hk, kv := float64(cfg.Dim), float64(cfg.Heads*cfg.HeadDim), float64(cfg.KVHeads*cfg.HeadDim)
	ff := float64(cfg.FFDim)
	b, src, tgt := float64(s.Batch), float64(s.SrcLen), float64(s.TgtLen)
	self := d*hk + 2*d*kv + hk*d
	enc := float64(cfg.EncoderLayers) * (self + 2*d*ff) * b * src
	dec := float64(cfg.Layers)*((self+d*hk+hk*d+2*d*ff)*b*tgt+2*d*kv*b*src) + d*float64(cfg.Vocab)*b*tgt
	attn := 2 * 2 * b * hk * (float64(cfg.EncoderLayers)*src*src + float64(cfg.Layers)*(tgt*tgt+tgt*src))
	return 3 * (2*(enc+dec) + attn)
}

// runLM trains an LM on random batches of one shape, s.Warmup steps untimed and then
// s.Steps timed; on s.Ranks data-parallel ranks each step trains one batch per rank.
func runLM(s Spec) (Result, error) {
	ts := train.DefaultSettings(s.Warmup + s.Steps)
	ts.Accum = s.Ranks
	tr, err := train.NewTrainerRanks(s.Model, nil, ts, s.Device, s.Ranks)
	if err != nil {
		return Result{}, err
	}
	defer tr.Close()
	r := rand.New(rand.NewPCG(1, 2))
	vocab := s.Model.Vocab
	mk := func() train.Batch {
		b := train.Batch{Shape: models.Shape{Batch: s.Batch, TgtLen: s.Seq}}
		for i := 0; i < s.Batch*s.Seq; i++ {
			b.Tokens = append(b.Tokens, 1+r.IntN(vocab-1))
			b.Targets = append(b.Targets, 1+r.IntN(vocab-1))
		}
		return b
	}
	data := make([]train.Batch, 2*s.Ranks)
	for i := range data {
		data[i] = mk()
	}
	res := Result{TimedSteps: s.Steps, Tokens: float64(s.Ranks * s.Batch * s.Seq), FLOPs: float64(s.Ranks) * LMFLOPs(s.Model, s.Batch, s.Seq)}
	var start time.Time
	for i := 0; i < s.Warmup+s.Steps; i++ {
		if i == s.Warmup {
			start = time.Now()
		}
		k := i % 2 * s.Ranks
		st, err := tr.TrainStep(data[k : k+s.Ranks])
		if err != nil {
			return res, err
		}
		if i == 0 {
			res.First = st.Loss
		}
		res.Last = st.Loss
	}
	res.PerStep = time.Since(start).Seconds() / float64(s.Steps)
	res.Peak, res.PeakOK = tr.PeakMemory()
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

// runTranslate trains a translation model (label smoothing 0.1) one step per shape,
// visiting the shapes in order s.Repeat times, each on random batches of its shape, one per
// data-parallel rank; the device memory is set aside for the largest shape first, as mqa
// train does, and the last visit is timed.
func runTranslate(s Spec) (Result, error) {
	ts := train.DefaultSettings(s.Repeat * len(s.Shapes))
	ts.LabelSmoothing, ts.Accum = 0.1, s.Ranks
	tr, err := train.NewTrainerRanks(s.Model, nil, ts, s.Device, s.Ranks)
	if err != nil {
		return Result{}, err
	}
	defer tr.Close()
	if err := tr.Reserve(s.Shapes, nil); err != nil {
		return Result{}, err
	}
	r := rand.New(rand.NewPCG(1, 2))
	data := make([][]train.Batch, len(s.Shapes))
	res := Result{TimedSteps: len(s.Shapes)}
	for i, sh := range s.Shapes {
		for range s.Ranks {
			data[i] = append(data[i], randomTranslationBatch(r, sh, s.Model.Vocab))
		}
		res.Tokens += float64(s.Ranks*sh.Batch*sh.TgtLen) / float64(len(s.Shapes))
		res.FLOPs += float64(s.Ranks) * TranslateFLOPs(s.Model, sh) / float64(len(s.Shapes))
	}
	var start time.Time
	for visit := 0; visit < s.Repeat; visit++ {
		if visit == s.Repeat-1 {
			start = time.Now()
		}
		for i := range data {
			st, err := tr.TrainStep(data[i])
			if err != nil {
				sh := s.Shapes[i]
				return res, fmt.Errorf("shape %dx%dx%d: %w", sh.Batch, sh.SrcLen, sh.TgtLen, err)
			}
			if visit == 0 && i == 0 {
				res.First = st.Loss
			}
			res.Last = st.Loss
		}
	}
	res.PerStep = time.Since(start).Seconds() / float64(len(s.Shapes))
	res.Peak, res.PeakOK = tr.PeakMemory()
	return res, nil
}
