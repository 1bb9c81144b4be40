//go:build mqacuda

package cuda

// `mqa bench decode -device cuda`: cached decoding on the GPU with random weights, for each
// attention variant (parameter-matched to MHA), cache type, batch, context (and beam for
// translation). Each point times Steps replays of the captured step-plus-greedy-choice graph
// (the next token is chosen on the GPU and fed back there; nothing returns to the host) with
// CUDA events, and compares the bytes a step must read with the copy and read bandwidth
// measured on the same card at the start of the run.

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"
	"unsafe"

	"gorgonia.org/tensor"

	"mqa/infer"
	"mqa/layers"
	"mqa/models"
)

// measureBandwidth times k_copy4 and k_read4 over 1 GiB (or a quarter of the free memory)
// and returns GB/s (10⁹ bytes per second): copy counts the bytes read plus written.
func (dec *Decoder) measureBandwidth() (copyGBps, readGBps float64, err error) {
	err = dec.rt.w.do(func() error {
		d := dec.rt.d
		free, _ := d.memInfo()
		bytes := min(int64(1)<<30, free/4) &^ 255
		src, err := d.alloc(bytes, "bandwidth probe")
		if err != nil {
			return err
		}
		defer d.free(src)
		dst, err := d.alloc(bytes, "bandwidth probe")
		if err != nil {
			return err
		}
		defer d.free(dst)
		n4 := bytes / 16
		if err := d.launch("k_fill_hash_f32", [3]int{4 * d.sms, 1, 1}, blk256, 0, src, bytes/4, uint64(1), float32(1)); err != nil {
			return err
		}
		grid := [3]int{8 * d.sms, 1, 1}
		best := func(f func() error) (float64, error) { // the fastest of 10 runs after 2 warm-ups
			var times []float64
			for i := 0; i < 12; i++ {
				ms, err := d.timeMS(f)
				if err != nil {
					return 0, err
				}
				if i >= 2 {
					times = append(times, ms)
				}
			}
			return slices.Min(times), nil
		}
		ms, err := best(func() error { return d.launch("k_copy4", grid, blk256, 0, dst, src, n4) })
		if err != nil {
			return err
		}
		copyGBps = 2 * float64(bytes) / (ms * 1e6)
		if ms, err = best(func() error { return d.launch("k_read4", grid, blk256, 0, dst, src, n4) }); err != nil {
			return err
		}
		readGBps = float64(bytes) / (ms * 1e6)
		return nil
	})
	return copyGBps, readGBps, err
}

// timeLoop fills the cache with random rows for ctx positions of every row, runs two warm-up
// steps and times steps replays of the device greedy loop. It returns µs per step.
func (dec *Decoder) timeLoop(dp *decodeProgram, ctx, steps int, rng *rand.Rand) (float64, error) {
	var us float64
	err := dec.rt.w.do(func() error {
		d, cfg := dec.rt.d, dec.Cfg
		fill := "k_fill_hash_f32"
		if dp.elem == 2 {
			fill = "k_fill_hash_bf16"
		}
		n := int64(dp.rows) * int64(cfg.KVHeads) * int64(dp.maxLen) * int64(cfg.HeadDim)
		for l := 0; l < cfg.Layers; l++ {
			for k, c := range []dptr{dp.cacheK[l], dp.cacheV[l]} {
				if err := d.launch(fill, [3]int{4 * d.sms, 1, 1}, blk256, 0, c, n, uint64(1000*l+k+1), float32(1)); err != nil {
					return err
				}
			}
		}
		fed := dp.p.fed
		for b := 0; b < dp.rows; b++ {
			fed[dp.tokOff+b] = int32(3 + rng.IntN(cfg.Vocab-3))
			fed[dp.posOff+b], fed[dp.lenOff+b] = int32(ctx-2), int32(ctx-2)
		}
		if err := d.upload(dp.p.fedDev, unsafe.Pointer(&fed[0]), 4*len(fed)); err != nil {
			return err
		}
		// two warm-up steps (the second captures the graph), then the timed replays
		for i := 0; i < 2; i++ {
			if err := dec.run(dp, true); err != nil {
				return err
			}
		}
		if err := d.sync(); err != nil {
			return err
		}
		ms, err := d.timeMS(func() error {
			for i := 0; i < steps; i++ {
				if err := dec.run(dp, true); err != nil {
					return err
				}
			}
			return nil
		})
		us = ms * 1e3 / float64(steps)
		for r := range dp.lens {
			dp.lens[r] = ctx + steps
		}
		return err
	})
	return us, err
}

// RunDecodeBench runs the GPU decode benchmark, reporting each point's progress on progress.
func RunDecodeBench(spec DecodeBenchSpec, progress io.Writer) (*DecodeBenchResult, error) {
	base, err := models.Preset(spec.Preset, spec.Task, spec.Vocab)
	if err != nil {
		return nil, err
	}
	if spec.Steps < 1 || len(spec.Attn) == 0 || len(spec.Batches) == 0 || len(spec.Contexts) == 0 {
		return nil, fmt.Errorf("bench decode: steps, attention, batch and context lists must be given")
	}
	caches := spec.Caches
	if len(caches) == 0 {
		caches = []string{"fp32"}
	}
	beams := []int{1}
	if spec.Task == models.TaskTranslate && len(spec.Beams) > 0 {
		beams = spec.Beams
	}
	maxCtx := slices.Max(spec.Contexts)
	base.MaxLen = (maxCtx + spec.Steps + spec.HostSteps + 4 + 15) / 16 * 16
	if spec.MemFraction <= 0 || spec.MemFraction > 1 {
		spec.MemFraction = 0.85
	}
	res := &DecodeBenchResult{}
	logf := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, format+"\n", args...)
		}
	}
	for ai, attn := range spec.Attn {
		kv, err := models.ParseAttention(attn, base.Heads)
		if err != nil {
			return nil, err
		}
		cfg, err := base.WithKVHeads(kv, kv != base.Heads)
		if err != nil {
			return nil, err
		}
		params := layers.NewParams(tensor.Float32, spec.Seed)
		shape := models.Shape{Batch: 1, TgtLen: 1}
		if cfg.Task == models.TaskTranslate {
			shape.SrcLen = 1
		}
		if _, err := models.Build(params, cfg, shape, models.Options{}); err != nil {
			return nil, err
		}
		for _, cache := range caches {
			opt := DecodeOptions{Cache: cache, Math: spec.Math, Graphs: true, Kernel: spec.Kernel, Splits: spec.Splits}
			dec, err := NewDecoder(cfg, params, opt)
			if err != nil {
				return nil, err
			}
			if ai == 0 && res.Device == "" {
				res.Device = dec.Device
				if res.CopyGBps, res.ReadGBps, err = dec.measureBandwidth(); err != nil {
					dec.Close()
					return nil, err
				}
				logf("bench decode: %s: copy %.0f GB/s, read %.0f GB/s", dec.Device, res.CopyGBps, res.ReadGBps)
			}
			for _, batch := range spec.Batches {
				for _, ctx := range spec.Contexts {
					for _, beam := range beams {
						row, skip, err := benchDecodePoint(dec, spec, res, batch, beam, ctx)
						if err != nil {
							dec.Close()
							return nil, fmt.Errorf("bench decode %s %s batch %d beam %d context %d: %w", attn, cache, batch, beam, ctx, err)
						}
						if skip != "" {
							res.Skipped = append(res.Skipped, skip)
							logf("bench decode: skipped %s", skip)
							continue
						}
						row.Attn, row.Params = cfg.AttentionName(), params.Count()
						res.Rows = append(res.Rows, row)
						logf("bench decode: %s %s batch %d beam %d context %d: %.1f µs/step, %.0f GB/s, %.2f× floor",
							row.Attn, cache, batch, beam, ctx, row.StepUS, row.GBps, row.OverFloor)
					}
				}
			}
			dec.Close()
		}
	}
	res.FloorBW = "read"
	if res.CopyGBps > res.ReadGBps {
		res.FloorBW = "copy"
	}
	return res, nil
}

// hostStepUS is the median time in µs of a step of infer's search driven from the host, over
// steps steps from the tokens toks: each uploads the tokens, replays the step, ranks on the GPU
// and brings back k = 1 (greedy) or 2·beam candidates per row; beam search then reorders the
// cache (each sequence's rows shifted by one, as a stand-in for the choice of parents, so that
// the gather really moves rows).
func hostStepUS(st *stepper, beam int, toks []int, steps int) (float64, error) {
	k := min(2*beam, infer.MaxTopK)
	if beam == 1 {
		k = 1
	}
	parents := make([]int, len(toks))
	for r := range parents {
		parents[r] = r/beam*beam + (r+1)%beam
	}
	times := make([]float64, steps)
	for i := range times {
		t0 := time.Now()
		ids, _, err := st.StepTopK(toks, k)
		if err != nil {
			return 0, err
		}
		if beam > 1 {
			if err := st.Reorder(parents); err != nil {
				return 0, err
			}
		}
		times[i] = float64(time.Since(t0).Nanoseconds()) / 1e3
		for r := range toks {
			toks[r] = ids[r*k]
		}
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// benchDecodePoint measures one point (batch × beam rows after ctx tokens of context): its
// row, or, when the point does not fit in memory, the reason it was skipped.
func benchDecodePoint(dec *Decoder, spec DecodeBenchSpec, res *DecodeBenchResult, batch, beam, ctx int) (DecodeBenchRow, string, error) {
	cfg := dec.Cfg
	rows := batch * beam
	capacity := ctx + spec.Steps + spec.HostSteps + 2
	row := DecodeBenchRow{Impl: "mqa-go", Device: dec.Device, Task: cfg.Task, KVHeads: cfg.KVHeads, FFDim: cfg.FFDim,
		Batch: batch, Beam: beam, Context: ctx, Cache: dec.Opt.Cache, Weights: "fp32", Math: dec.Opt.Math, Kernel: dec.Opt.Kernel}
	gemmElem := 4
	if dec.Opt.Math == "bf16" {
		row.Weights, gemmElem = "bf16", 2
	}
	srcLen := 0
	if cfg.Task == models.TaskTranslate {
		srcLen = min((ctx+7)/8*8, cfg.MaxLen)
	}
	// memory: the caches, the memory and a rough bound on the activations (logits dominate)
	need := dec.CacheBytes(rows, (capacity+15)/16*16, srcLen) + int64(rows)*int64(cfg.Vocab+8*cfg.FFDim+32*cfg.Dim)*4
	var free int64
	dec.rt.w.do(func() error {
		dec.dropPrograms()
		free, _ = dec.rt.d.memInfo()
		return nil
	})
	desc := fmt.Sprintf("%s %s batch %d beam %d context %d: needs ≈ %s, %s free", cfg.AttentionName(), dec.Opt.Cache, batch, beam, ctx, mib(need), mib(free))
	if float64(need) > spec.MemFraction*float64(free) {
		return row, desc, nil
	}
	rng := rand.New(rand.NewPCG(spec.Seed, uint64(batch*1000+ctx)))
	randToks := func(n, vocab int) []int {
		t := make([]int, n)
		for i := range t {
			t[i] = 3 + rng.IntN(vocab-3)
		}
		return t
	}
	var st *stepper
	if srcLen > 0 {
		srcVocab := cfg.Vocab
		if cfg.SrcVocab > 0 {
			srcVocab = cfg.SrcVocab
		}
		srcs := make([][]int, batch)
		for i := range srcs {
			srcs[i] = randToks(ctx, srcVocab)
		}
		if _, err := dec.Translation(srcs, beam, capacity); err != nil { // compile and warm up
			if errors.Is(err, errOutOfMemory) {
				return row, desc + " (" + err.Error() + ")", nil
			}
			return row, "", err
		}
		// time the encoder alone: it runs inside Translation, so time Translation with a
		// synchronised clock and subtract nothing (the memory repeat per beam is included)
		start := time.Now()
		s, err := dec.Translation(srcs, beam, capacity)
		if err != nil {
			return row, "", err
		}
		row.EncoderUS = float64(time.Since(start).Nanoseconds()) / 1e3 / float64(batch*ctx)
		st = s.(*stepper)
	} else {
		s, err := dec.LM(rows, capacity)
		if err != nil {
			if errors.Is(err, errOutOfMemory) {
				return row, desc + " (" + err.Error() + ")", nil
			}
			return row, "", err
		}
		st = s.(*stepper)
	}
	us, err := dec.timeLoop(st.dp, ctx, spec.Steps, rng)
	if err != nil {
		return row, "", err
	}
	row.StepUS, row.TokenUS = us, us/float64(batch)
	row.Kernels, row.Splits = st.dp.kernels+1, st.dp.splits
	if spec.HostSteps > 0 {
		if row.HostStepUS, err = hostStepUS(st, beam, randToks(rows, cfg.Vocab), spec.HostSteps); err != nil {
			return row, "", err
		}
	}
	visible := float64(ctx) + float64(spec.Steps-1)/2
	row.WeightBytes, row.KVBytes = StepBytes(st.dp.p.plan, cfg, rows, visible, srcLen, st.dp.elem, gemmElem)
	row.StepBytes = row.WeightBytes + row.KVBytes
	row.GBps = float64(row.StepBytes) / (us * 1e3)
	bw := max(res.CopyGBps, res.ReadGBps)
	row.FloorUS = float64(row.StepBytes) / (bw * 1e3)
	row.OverFloor = us / row.FloorUS
	return row, "", nil
}
