package infer

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"gorgonia.org/tensor"

	"mqa/layers/ops"
	"mqa/models"
)

// BenchSpec describes a decode benchmark: a preset model with random weights, for each
// attention variant (MHA, GQA, MQA at the parameter count of MHA), batch size and
// context length.
type BenchSpec struct {
	Preset, Task string
	Vocab        int
	Attn         []string // "mha", "gqa:G", "mqa"
	Batches      []int
	Contexts     []int // tokens already cached (translation: also the source length)
	Beams        []int // translation: beam sizes (rows per source); LM: ignored (1)
	Steps        int   // timed steps per point
	NoCache      bool  // also time the full recomputation
	Seed         uint64
}

// BenchRow is one measured point. Times are per decode step (all rows of the batch) and
// per output token (a step makes one output token per sequence, whatever the beam size).
type BenchRow struct {
	Task        string  `json:"task"`
	Attn        string  `json:"attn"`
	KVHeads     int     `json:"kv_heads"`
	FFDim       int     `json:"ff_dim"`
	Params      int     `json:"params"`
	Batch       int     `json:"batch"`
	Beam        int     `json:"beam"`
	Context     int     `json:"context"`
	StepUS      float64 `json:"us_per_step"`
	TokenUS     float64 `json:"us_per_token"`
	EncoderUS   float64 `json:"encoder_us_per_token,omitempty"` // translation: encoder time / (batch·source tokens)
	NoCacheUS   float64 `json:"nocache_us_per_step,omitempty"`
	Speedup     float64 `json:"cache_speedup,omitempty"`
	CacheBytes  int64   `json:"cache_bytes"`       // self-attention K/V cache as allocated (context+steps positions); translation adds the cross K/V
	KVReadBytes int64   `json:"kv_bytes_per_step"` // K/V bytes one step reads (self at the context, plus cross)
	StepBytes   int64   `json:"bytes_per_step"`    // weights of the decoder + K/V read
}

// Validate checks a spec against the model's max_len.
func (s BenchSpec) Validate(maxLen int) error {
	if len(s.Attn) == 0 || len(s.Batches) == 0 || len(s.Contexts) == 0 {
		return fmt.Errorf("bench: attention, batch and context lists must not be empty")
	}
	if s.Steps < 1 {
		return fmt.Errorf("bench: steps %d must be at least 1", s.Steps)
	}
	for _, b := range s.Batches {
		if b < 1 {
			return fmt.Errorf("bench: batch %d must be at least 1", b)
		}
	}
	for _, b := range s.Beams {
		if b < 1 {
			return fmt.Errorf("bench: beam %d must be at least 1", b)
		}
	}
	for _, c := range s.Contexts {
		if c < 1 || c+s.Steps > maxLen {
			return fmt.Errorf("bench: context %d + %d steps must fit the model's max_len %d (context ≥ 1)", c, s.Steps, maxLen)
		}
	}
	return nil
}

// Bench runs the decode benchmark; progress (may be nil) gets a line per point. Times are
// medians over the timed steps (cached) or passes (uncached, at most 3).
func Bench(spec BenchSpec, progress io.Writer) ([]BenchRow, error) {
	base, err := models.Preset(spec.Preset, spec.Task, spec.Vocab)
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(base.MaxLen); err != nil {
		return nil, err
	}
	beams := []int{1}
	if spec.Task == models.TaskTranslate && len(spec.Beams) > 0 {
		beams = spec.Beams
	}
	var rows []BenchRow
	for _, attn := range spec.Attn {
		kv, err := models.ParseAttention(attn, base.Heads)
		if err != nil {
			return nil, err
		}
		cfg, err := base.WithKVHeads(kv, true)
		if err != nil {
			return nil, err
		}
		params, err := models.InitParams(cfg, spec.Seed)
		if err != nil {
			return nil, err
		}
		cpu, err := NewCPU(cfg, params, false)
		if err != nil {
			return nil, err
		}
		decoderWeights := 0
		for _, n := range params.Names() {
			if !strings.HasPrefix(n, "encoder.") && !strings.HasPrefix(n, "src_embed") {
				decoderWeights += params.Get(n).Shape().TotalSize()
			}
		}
		for _, batch := range spec.Batches {
			for _, ctx := range spec.Contexts {
				for _, beam := range beams {
					row, err := benchPoint(cpu, spec, batch, beam, ctx)
					if err != nil {
						return nil, err
					}
					row.Attn, row.FFDim, row.Params = cfg.AttentionName(), cfg.FFDim, params.Count()
					row.StepBytes = 4*int64(decoderWeights) + row.KVReadBytes
					rows = append(rows, row)
					if progress != nil {
						fmt.Fprintf(progress, "bench decode: %s batch %d beam %d context %d: %.0f µs/step\n", row.Attn, batch, beam, ctx, row.StepUS)
					}
				}
			}
		}
	}
	return rows, nil
}

func benchPoint(cpu *CPU, spec BenchSpec, batch, beam, ctx int) (BenchRow, error) {
	cfg := cpu.Cfg
	rng := rand.New(rand.NewPCG(spec.Seed, uint64(batch*1000+ctx)))
	rows := batch * beam
	capacity := ctx + spec.Steps
	row := BenchRow{Task: cfg.Task, KVHeads: cfg.KVHeads, Batch: batch, Beam: beam, Context: ctx}
	var (
		memK, memV []*tensor.Dense
		lens       []int
		srcLen     int
	)
	if cfg.Task == models.TaskTranslate {
		srcs := make([][]int, batch)
		for i := range srcs {
			srcs[i] = randTokens(rng, ctx, cpu.srcVocab())
		}
		if _, _, _, _, err := cpu.Encode(srcs, beam); err != nil { // compile and warm up
			return row, err
		}
		start := time.Now()
		var err error
		if memK, memV, lens, srcLen, err = cpu.Encode(srcs, beam); err != nil {
			return row, err
		}
		row.EncoderUS = float64(time.Since(start).Microseconds()) / float64(batch*ctx)
	}
	st, err := cpu.step(rows, capacity, srcLen)
	if err != nil {
		return row, err
	}
	s := cpu.newCached(st, memK, memV, lens)
	// A cache already holding ctx positions of random keys and values.
	for l := range s.cache.K {
		for _, t := range []*tensor.Dense{s.cache.K[l], s.cache.V[l]} {
			d := t.Data().([]float32)
			for i := range d {
				d[i] = float32(rng.NormFloat64())
			}
		}
	}
	for b := range s.cache.Len {
		s.cache.Len[b] = ctx - 1
	}
	if _, err := s.Step(randTokens(rng, rows, cfg.Vocab)); err != nil { // warm-up, fills position ctx−1
		return row, err
	}
	// Timed steps run at positions ctx … ctx+Steps−1; the median resists other load on the
	// machine.
	times := make([]float64, spec.Steps)
	for i := range times {
		start := time.Now()
		if _, err := s.Step(randTokens(rng, rows, cfg.Vocab)); err != nil {
			return row, err
		}
		times[i] = float64(time.Since(start).Nanoseconds()) / 1e3
	}
	row.StepUS = median(times)
	row.TokenUS = row.StepUS / float64(batch)
	row.CacheBytes = CacheBytes(cfg.Layers, rows, cfg.KVHeads, capacity, cfg.HeadDim)
	seen := ctx + 1 - ops.WindowStart(ctx, cfg.Window) // keys the step's query at position ctx sees
	row.KVReadBytes = CacheBytes(cfg.Layers, rows, cfg.KVHeads, seen, cfg.HeadDim)
	cross := CacheBytes(cfg.Layers, rows, cfg.KVHeads, srcLen, cfg.HeadDim) // 0 for a language model
	row.CacheBytes += cross
	row.KVReadBytes += cross
	if spec.NoCache {
		us, err := benchFull(cpu, rows, beam, ctx, srcLen, min(spec.Steps, 3), rng)
		if err != nil {
			return row, err
		}
		row.NoCacheUS = us
		row.Speedup = us / row.StepUS
	}
	return row, nil
}

// benchFull times the uncached step at this context: one pass of the full model over
// ctx+1 target tokens (and the source) for all rows.
func benchFull(cpu *CPU, rows, beam, ctx, srcLen, reps int, rng *rand.Rand) (float64, error) {
	g, err := cpu.fullGraph(rows, srcLen, ctx+1)
	if err != nil {
		return 0, err
	}
	in := randTokens(rng, rows*(ctx+1), cpu.Cfg.Vocab)
	out := make([]int, len(in))
	var src, lens []int
	if srcLen > 0 {
		src, lens = randTokens(rng, rows*srcLen, cpu.srcVocab()), make([]int, rows)
		for i := range lens {
			lens[i] = srcLen
		}
	}
	if err := g.run(src, lens, in, out); err != nil {
		return 0, err
	}
	times := make([]float64, reps)
	for i := range times {
		start := time.Now()
		if err := g.run(src, lens, in, out); err != nil {
			return 0, err
		}
		times[i] = float64(time.Since(start).Nanoseconds()) / 1e3
	}
	return median(times), nil
}

// randTokens draws n token ids in 3..vocab−1 (no padding, BOS or EOS).
func randTokens(rng *rand.Rand, n, vocab int) []int {
	t := make([]int, n)
	for i := range t {
		t[i] = 3 + rng.IntN(vocab-3)
	}
	return t
}

// median of xs (which it sorts).
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// WriteBenchTable prints the rows as one aligned table, and for translation Shazeer's
// Table 2 layout (encoder + decoder µs per output token, greedy and each beam size).
func WriteBenchTable(w io.Writer, rows []BenchRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "task\tattn\tkv\td_ff\tparams\tbatch\tbeam\tcontext\tµs/step\tµs/token\tenc µs/token\tnocache µs/step\tspeedup\tcache bytes\tK/V bytes/step\tbytes/step\t")
	for _, r := range rows {
		enc, nc, sp := "-", "-", "-"
		if r.EncoderUS > 0 {
			enc = fmt.Sprintf("%.1f", r.EncoderUS)
		}
		if r.NoCacheUS > 0 {
			nc, sp = fmt.Sprintf("%.0f", r.NoCacheUS), fmt.Sprintf("%.1f×", r.Speedup)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Task, r.Attn, r.KVHeads, r.FFDim,
			r.Params, r.Batch, r.Beam, r.Context, r.StepUS, r.TokenUS, enc, nc, sp, FormatBytes(r.CacheBytes), FormatBytes(r.KVReadBytes), FormatBytes(r.StepBytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rows) == 0 || rows[0].Task != models.TaskTranslate {
		return nil
	}
	fmt.Fprintln(w, "\nShazeer 2019 Table 2 layout: µs per output token, encoder + decoder")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "attn\tbatch\tsource len\tbeam\tenc + dec µs/token\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f + %.1f\t\n", r.Attn, r.Batch, r.Context, r.Beam, r.EncoderUS, r.TokenUS)
	}
	return tw.Flush()
}

// FormatBytes writes a byte count with a binary unit (B, KiB, MiB or GiB), as the decoding
// benchmarks' tables print sizes.
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
