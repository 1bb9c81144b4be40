//go:build mqacuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/infer"
	"mqa/layers/ops"
	"mqa/models"
)

func newTestDecoder(t *testing.T, cfg models.Config, seed uint64, opt DecodeOptions) (*Decoder, *infer.CPU) {
	t.Helper()
	params := initDecodeParams(t, cfg, seed)
	cpu, err := infer.NewCPU(cfg, params, false)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder(cfg, params, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dec.Close() })
	return dec, cpu
}

// relErrRows is max|a−b| / max|b| over the rows whose mask is set.
func relErrRows(a, b []float32, vocab int, mask []bool) float64 {
	var num, den float64
	for r, on := range mask {
		if !on {
			continue
		}
		for j := r * vocab; j < (r+1)*vocab; j++ {
			x, y := float64(a[j]), float64(b[j])
			if math.IsNaN(x) || math.IsNaN(y) {
				return math.Inf(1)
			}
			num = math.Max(num, math.Abs(x-y))
			den = math.Max(den, math.Abs(y))
		}
	}
	return num / math.Max(den, 1e-30)
}

// decodeSizes: MQA_DECODE_SIZE=small or large picks one size set (the compute-sanitizer runs
// of scripts/gpu.sh); unset runs both.
func decodeSizes() []string {
	switch s := os.Getenv("MQA_DECODE_SIZE"); s {
	case "small", "large":
		return []string{s}
	}
	return []string{"small", "large"}
}

// The decode-attention kernels (fast with 1 and several splits, reference; f32 and bf16 K/V)
// against ops.DecodeAttention's CPU kernel on random inputs.
func TestDecodeAttentionKernel(t *testing.T) {
	cfg, _ := models.Preset("tiny", models.TaskLM, 37)
	dec, _ := newTestDecoder(t, cfg, 1, DefaultDecodeOptions())
	type tc struct {
		name              string
		h, kv, dk, window int
		hasNew            bool
		maxLen            int
		lens              []int
	}
	sets := map[string][]tc{
		"small": {
			{"mha self", 4, 4, 16, 0, true, 40, []int{0, 1, 39, -1}},
			{"mqa self window", 8, 1, 16, 5, true, 40, []int{39, 3, 5}},
			{"gqa cross", 8, 2, 64, 0, false, 24, []int{24, 1, 13}},
			{"gqa two per group", 4, 2, 32, 0, true, 150, []int{149, 7, 0, 64}},
			{"odd head_dim (reference kernel)", 4, 2, 12, 0, true, 20, []int{19, 0}},
		},
		"large": {
			{"mha self long", 8, 8, 64, 0, true, 600, []int{599, 64, 65, 300}},
			{"mqa self long", 8, 1, 128, 0, true, 1100, []int{1099, 1, 700, -1, 128}},
			{"gqa2 self window", 8, 2, 64, 200, true, 700, []int{699, 150, 201}},
			{"mqa cross", 8, 1, 64, 0, false, 333, []int{333, 200, 1}},
		},
	}
	for _, size := range decodeSizes() {
		for ci, c := range sets[size] {
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			B := len(c.lens)
			rnd := func(n int) []float32 {
				xs := make([]float32, n)
				for i := range xs {
					xs[i] = float32(rng.NormFloat64())
				}
				return xs
			}
			q, k, v := rnd(B*c.h*c.dk), rnd(B*c.kv*c.maxLen*c.dk), rnd(B*c.kv*c.maxLen*c.dk)
			var nk, nv []float32
			if c.hasNew {
				nk, nv = rnd(B*c.kv*c.dk), rnd(B*c.kv*c.dk)
			}
			op := ops.DecodeAttention{Heads: c.h, KVHeads: c.kv, HeadDim: c.dk, Scale: 1 / math.Sqrt(float64(c.dk)), Window: c.window, HasNew: c.hasNew}
			for _, bf16 := range []bool{false, true} {
				kk, vv := k, v
				if bf16 { // the CPU reference sees the rounded cache
					kk, vv = slices.Clone(k), slices.Clone(v)
					for i := range kk {
						kk[i], vv[i] = fromBF16(toBF16(kk[i])), fromBF16(toBF16(vv[i]))
					}
				}
				want := cpuDecodeAttention(t, op, q, kk, vv, nk, nv, c.lens, c.maxLen)
				// the tensor-core kernel also with fewer blocks than items (a block takes several)
				for _, run := range []struct {
					kernel         string
					splits, blocks int
				}{{"fast", 1, 0}, {"fast", 3, 0}, {"fast", 0, 0}, {"fast", 1, 1}, {"fast", 3, 2}, {"simt", 1, 0}, {"simt", 3, 0}, {"simt", 0, 0}, {"ref", 0, 0}} {
					res, err := dec.decodeAttentionOnce(op, q, k, v, nk, nv, c.lens, c.maxLen, bf16, run.kernel, run.splits, run.blocks)
					if err != nil {
						t.Fatalf("%s %s: %v", size, c.name, err)
					}
					name := fmt.Sprintf("%s %s bf16=%v %s/%d splits/%d blocks", size, c.name, bf16, run.kernel, run.splits, run.blocks)
					checkAttnRun(t, name, op, res, kk, vv, nk, nv, c.lens, c.maxLen, bf16)
					got := res.out
					var worst, scale float64
					for i := range want {
						worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
						scale = math.Max(scale, math.Abs(float64(want[i])))
					}
					if rel := worst / math.Max(scale, 1e-30); rel > 1e-5 || math.IsNaN(rel) {
						t.Errorf("%s: relative error %.3g", name, rel)
					} else {
						t.Logf("%s: relative error %.2g", name, rel)
					}
				}
			}
		}
	}
}

// checkAttnRun checks what a decode-attention launch does besides its output: a second launch
// gives the same output (the split counters were left zero), the bf16 copy is the output
// rounded, and the caches (k, v as uploaded, rounded for a bf16 cache) gained each row's new
// key and value at its length, where there is room and a new row, and nothing else.
func checkAttnRun(t *testing.T, name string, op ops.DecodeAttention, res attnRun, k, v, nk, nv []float32, lens []int, maxLen int, bf16 bool) {
	t.Helper()
	if !slices.Equal(res.out, res.again) {
		t.Errorf("%s: a second launch gives another output", name)
	}
	for i, x := range res.out {
		if res.outh[i] != toBF16(x) {
			t.Errorf("%s: bf16 copy of output %d is %#04x, want %#04x", name, i, res.outh[i], toBF16(x))
			break
		}
	}
	round := func(x float32) float32 {
		if bf16 {
			return fromBF16(toBF16(x))
		}
		return x
	}
	dk := op.HeadDim
	for b, n := range lens {
		for g := range op.KVHeads {
			bg := b*op.KVHeads + g
			for row := range maxLen {
				o := (bg*maxLen + row) * dk
				wantK, wantV, what := k[o:o+dk], v[o:o+dk], "keep its contents"
				if op.HasNew && row == n {
					what = "hold the new row"
					wantK, wantV = make([]float32, dk), make([]float32, dk)
					for d := range dk {
						wantK[d], wantV[d] = round(nk[bg*dk+d]), round(nv[bg*dk+d])
					}
				}
				if !slices.Equal(res.k[o:o+dk], wantK) || !slices.Equal(res.v[o:o+dk], wantV) {
					t.Errorf("%s: cache row %d of sequence %d, K/V head %d does not %s", name, row, b, g, what)
					return
				}
			}
		}
	}
}

func cpuDecodeAttention(t *testing.T, op ops.DecodeAttention, q, k, v, nk, nv []float32, lens []int, maxLen int) []float32 {
	t.Helper()
	B := len(lens)
	vals := []G.Value{
		tensor.New(tensor.WithShape(B, op.Heads*op.HeadDim), tensor.WithBacking(slices.Clone(q))),
		tensor.New(tensor.WithShape(B, op.KVHeads, maxLen, op.HeadDim), tensor.WithBacking(slices.Clone(k))),
		tensor.New(tensor.WithShape(B, op.KVHeads, maxLen, op.HeadDim), tensor.WithBacking(slices.Clone(v))),
	}
	if op.HasNew {
		vals = append(vals, tensor.New(tensor.WithShape(B, op.KVHeads*op.HeadDim), tensor.WithBacking(slices.Clone(nk))),
			tensor.New(tensor.WithShape(B, op.KVHeads*op.HeadDim), tensor.WithBacking(slices.Clone(nv))))
	}
	vals = append(vals, tensor.New(tensor.WithShape(B), tensor.WithBacking(slices.Clone(lens))))
	out, err := op.Do(vals...)
	if err != nil {
		t.Fatal(err)
	}
	return out.Data().([]float32)
}

// GPU cached decoding against CPU cached decoding, step by step on the same tokens (with a
// finished row and a beam reorder), then whole greedy and beam searches.
func TestDecodeParityCPU(t *testing.T) {
	for _, v := range decodeVariants {
		for _, opt := range []DecodeOptions{
			{Cache: "fp32", Math: "fp32", Graphs: true, Kernel: "fast"},
			{Cache: "fp32", Math: "fp32", Graphs: false, Kernel: "ref"},
			{Cache: "fp32", Math: "fp32", Graphs: true, Kernel: "simt"},
			{Cache: "bf16", Math: "fp32", Graphs: true, Kernel: "fast"},
			{Cache: "bf16", Math: "bf16", Graphs: true, Kernel: "fast"},
			{Cache: "fp32", Math: "fp32", Graphs: true, Kernel: "fast", Splits: 3}, // the in-kernel combine, empty splits too
		} {
			name := v.name + "/" + opt.Cache + "-" + opt.Math + "-" + opt.Kernel
			if opt.Splits > 0 {
				name += fmt.Sprintf("-%dsplits", opt.Splits)
			}
			t.Run(name, func(t *testing.T) {
				cfg := v.config(t)
				dec, cpu := newTestDecoder(t, cfg, 3, opt)
				limit := 1e-4
				if opt.Cache == "bf16" {
					limit = 3e-2 // K/V rounded to 8 significant bits
				}
				if opt.Math == "bf16" {
					limit = 6e-2 // and every GEMM's inputs, weights included
				}
				rng := rand.New(rand.NewPCG(5, 6))
				const rows, capacity = 3, 14
				var gs, cs infer.Stepper
				var err error
				if cfg.Task == models.TaskTranslate {
					srcs := [][]int{{5, 6, 7, 8, 9}, {10, 11, 12}, {13}}
					if gs, err = dec.Translation(srcs, 1, capacity); err != nil {
						t.Fatal(err)
					}
					if cs, err = cpu.Translation(srcs, 1, capacity); err != nil {
						t.Fatal(err)
					}
				} else {
					if gs, err = dec.LM(rows, capacity); err != nil {
						t.Fatal(err)
					}
					if cs, err = cpu.LM(rows, capacity); err != nil {
						t.Fatal(err)
					}
				}
				worst := 0.0
				for step := 0; step < 10; step++ {
					toks := make([]int, rows)
					mask := make([]bool, rows)
					for r := range toks {
						toks[r] = 1 + rng.IntN(cfg.Vocab-1)
						mask[r] = true
					}
					if step >= 6 {
						toks[1], mask[1] = -1, false // a finished row
					}
					gl, err := gs.Step(toks)
					if err != nil {
						t.Fatal(err)
					}
					cl, err := cs.Step(toks)
					if err != nil {
						t.Fatal(err)
					}
					e := relErrRows(gl, cl, cfg.Vocab, mask)
					worst = math.Max(worst, e)
					if e > limit {
						t.Fatalf("step %d: logits differ by %.3g (relative, limit %.g)", step, e, limit)
					}
					if step == 4 {
						parents := []int{2, 0, 0}
						if err := gs.Reorder(parents); err != nil {
							t.Fatal(err)
						}
						if err := cs.Reorder(parents); err != nil {
							t.Fatal(err)
						}
					}
				}
				t.Logf("worst relative logits difference over 10 steps: %.2g", worst)
				if opt.Cache == "bf16" { // rounding may change near-tied choices: no whole searches
					return
				}
				// whole searches: greedy tokens and beam hypotheses identical
				if cfg.Task == models.TaskLM {
					prompts := [][]int{{1, 2, 3}, {4}, {5, 6}}
					gsG, _ := dec.LM(3, 20)
					csG, _ := cpu.LM(3, 20)
					a, err := infer.Generate(gsG, prompts, 12, -1, infer.Sampling{})
					if err != nil {
						t.Fatal(err)
					}
					b, err := infer.Generate(csG, prompts, 12, -1, infer.Sampling{})
					if err != nil {
						t.Fatal(err)
					}
					for r := range a {
						if !slices.Equal(a[r], b[r]) {
							t.Errorf("greedy row %d: GPU %v, CPU %v", r, a[r], b[r])
						}
					}
					// unrestricted sampling: drawn on the GPU (StepSample), the same tokens
					gsS, _ := dec.LM(3, 20)
					csS, _ := cpu.LM(3, 20)
					sampling := infer.Sampling{Temperature: 0.9, Seed: 11}
					if a, err = infer.Generate(gsS, prompts, 12, -1, sampling); err != nil {
						t.Fatal(err)
					}
					if b, err = infer.Generate(csS, prompts, 12, -1, sampling); err != nil {
						t.Fatal(err)
					}
					for r := range a {
						if !slices.Equal(a[r], b[r]) {
							t.Errorf("sampled row %d: GPU %v, CPU %v", r, a[r], b[r])
						}
					}
					// StepTopK (ranked on the GPU) gives infer.TopK's ranking of the CPU's logits
					gd, _ := dec.LM(3, 20)
					cd, _ := cpu.LM(3, 20)
					toks := []int{1, 4, 5}
					for i := 0; i < 8; i++ {
						const k = 7
						ids, logp, err := gd.(infer.Ranker).StepTopK(toks, k)
						if err != nil {
							t.Fatal(err)
						}
						logits, err := cd.Step(toks)
						if err != nil {
							t.Fatal(err)
						}
						wantIDs, wantLogp := infer.TopK(logits, cfg.Vocab, k)
						for j := range ids {
							if ids[j] != wantIDs[j] || math.Abs(float64(logp[j]-wantLogp[j])) > 1e-4*max(1, math.Abs(float64(wantLogp[j]))) {
								t.Fatalf("StepTopK %d row %d rank %d: GPU %d (%.6f), CPU %d (%.6f)", i, j/k, j%k, ids[j], logp[j], wantIDs[j], wantLogp[j])
							}
						}
						for r := range toks {
							toks[r] = ids[r*k]
						}
					}
				} else {
					srcs := [][]int{{5, 6, 7, 8, 9}, {10, 11, 12}}
					bo := infer.Beam{Size: 3, Alpha: 0.6, MaxLen: 10, BOS: 1, EOS: 2}
					gsB, err := dec.Translation(srcs, bo.Size, bo.MaxLen)
					if err != nil {
						t.Fatal(err)
					}
					csB, err := cpu.Translation(srcs, bo.Size, bo.MaxLen)
					if err != nil {
						t.Fatal(err)
					}
					a, err := infer.BeamSearch(gsB, len(srcs), bo)
					if err != nil {
						t.Fatal(err)
					}
					b, err := infer.BeamSearch(csB, len(srcs), bo)
					if err != nil {
						t.Fatal(err)
					}
					for i := range a {
						if !slices.Equal(a[i].Tokens, b[i].Tokens) || math.Abs(a[i].Score-b[i].Score) > 1e-4*math.Max(1, math.Abs(b[i].Score)) {
							t.Errorf("beam sentence %d: GPU %v (%.6f), CPU %v (%.6f)", i, a[i].Tokens, a[i].Score, b[i].Tokens, b[i].Score)
						}
					}
				}
			})
		}
	}
}

// A stepper whose cache was taken over refuses to step.
func TestDecodeStepperTakenOver(t *testing.T) {
	cfg, _ := models.Preset("tiny", models.TaskLM, 37)
	dec, _ := newTestDecoder(t, cfg, 1, DefaultDecodeOptions())
	a, err := dec.LM(2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dec.LM(2, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Step([]int{1, 2}); err == nil {
		t.Errorf("an old stepper stepped on a cache it no longer owns")
	}
}

// When the GPU has no room for a new step's cache, the decoder frees the steps it keeps
// (whose Steppers then refuse to step) and allocates again: the new Stepper works.
func TestDecoderFreesCachesWhenFull(t *testing.T) {
	cfg, _ := models.Preset("tiny", models.TaskLM, 37)
	dec, _ := newTestDecoder(t, cfg, 1, DefaultDecodeOptions())
	const rows, capacity = 8192, 128
	// one step: its caches, a layer's reorder scratch, and its activations (generously)
	need := dec.CacheBytes(rows, capacity, 0)*5/4 + 64<<20
	var filler dptr
	err := dec.rt.w.do(func() error {
		free, _ := dec.rt.d.memInfo()
		var err error
		filler, err = dec.rt.d.alloc(free-need*3/2, "test filler") // room for one step, not two
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.rt.w.do(func() error {
		dec.rt.d.free(filler)
		return nil
	})
	a, err := dec.LM(rows, capacity)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dec.LM(rows-2, capacity) // another shape: another step
	if err != nil {
		t.Fatalf("the second step did not find room: %v", err)
	}
	tokens := make([]int, rows-2)
	for i := range tokens {
		tokens[i] = 1 + i%(cfg.Vocab-1)
	}
	if _, _, err := b.(infer.Ranker).StepTopK(tokens, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Step(append(tokens, 1, 2)); err == nil {
		t.Errorf("a stepper whose cache was freed stepped")
	}
}

// k_topk against infer.TopK on rows with many ties (values rounded to halves), a constant row
// and a row with −Inf, for several vocabularies and k.
func TestTopKKernel(t *testing.T) {
	cfg, _ := models.Preset("tiny", models.TaskLM, 37)
	dec, _ := newTestDecoder(t, cfg, 1, DefaultDecodeOptions())
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ vocab, rows, k int }{{100, 3, 1}, {100, 3, 7}, {8192, 4, 64}, {8192, 2, 1}, {64, 2, 64}} {
		logits := make([]float32, c.rows*c.vocab)
		for i := range logits {
			logits[i] = float32(math.Round(rng.NormFloat64()*6) / 2)
		}
		row1 := logits[c.vocab : 2*c.vocab]
		for j := range row1 {
			row1[j] = 1.5 // all tied: ids 0 … k−1
		}
		logits[3] = float32(math.Inf(-1))
		want, wantLogp := infer.TopK(logits, c.vocab, c.k)
		n := c.rows * c.k
		got := make([]int32, 2*n)
		err := dec.rt.w.do(func() error {
			d := dec.rt.d
			buf, err := d.alloc(int64(4*len(logits)+8*n), "test logits")
			if err != nil {
				return err
			}
			defer d.free(buf)
			top := buf.add(4 * len(logits))
			if err := d.upload(buf, unsafe.Pointer(&logits[0]), 4*len(logits)); err != nil {
				return err
			}
			if err := d.launch("k_topk", [3]int{c.rows, 1, 1}, blk256, 0, top, top.add(4*n), buf, int32(c.vocab), int32(c.k)); err != nil {
				return err
			}
			return d.download(unsafe.Pointer(&got[0]), top, 8*n)
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			lp := math.Float32frombits(uint32(got[n+i]))
			if int(got[i]) != want[i] || math.Abs(float64(lp-wantLogp[i])) > 1e-5*max(1, math.Abs(float64(wantLogp[i]))) {
				t.Fatalf("vocab %d k %d row %d rank %d: GPU %d (%.7f), host %d (%.7f)", c.vocab, c.k, i/c.k, i%c.k, got[i], lp, want[i], wantLogp[i])
			}
		}
	}
}

// k_sample against infer.SampleRow: rows of many tied values, a row with −Inf logits, wide
// and narrow ranges, several temperatures and vocabularies, u spread over [0, 1).
func TestSampleKernel(t *testing.T) {
	cfg, _ := models.Preset("tiny", models.TaskLM, 37)
	dec, _ := newTestDecoder(t, cfg, 1, DefaultDecodeOptions())
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		vocab, rows int
		temp        float64
	}{{37, 5, 1}, {100, 7, 0.7}, {8192, 9, 1}, {8192, 9, 2.5}, {32000, 4, 0.9}} {
		logits := make([]float32, c.rows*c.vocab)
		for i := range logits {
			logits[i] = float32(math.Round(rng.NormFloat64()*8) / 2)
		}
		for j := 0; j < c.vocab; j += 3 {
			logits[c.vocab+j] = float32(math.Inf(-1)) // row 1: a third of the tokens impossible
		}
		u := make([]float64, c.rows)
		for b := range u {
			u[b] = (float64(b) + rng.Float64()) / float64(c.rows)
		}
		got := make([]int32, c.rows)
		err := dec.rt.w.do(func() error {
			d := dec.rt.d
			uOff := (4*len(logits) + 7) / 8 * 8 // the u are doubles
			buf, err := d.alloc(int64(uOff+12*c.rows), "test logits")
			if err != nil {
				return err
			}
			defer d.free(buf)
			du := buf.add(uOff)
			ids := du.add(8 * c.rows)
			if err := d.upload(buf, unsafe.Pointer(&logits[0]), 4*len(logits)); err != nil {
				return err
			}
			if err := d.upload(du, unsafe.Pointer(&u[0]), 8*c.rows); err != nil {
				return err
			}
			if err := d.launch("k_sample", [3]int{c.rows, 1, 1}, blk256, 0, ids, buf, du, int32(c.vocab), c.temp); err != nil {
				return err
			}
			return d.download(unsafe.Pointer(&got[0]), ids, 4*c.rows)
		})
		if err != nil {
			t.Fatal(err)
		}
		for b := range got {
			if want := infer.SampleRow(logits[b*c.vocab:(b+1)*c.vocab], c.temp, u[b]); int(got[b]) != want {
				t.Errorf("vocab %d temperature %g row %d (u %.4f): GPU drew %d, host %d", c.vocab, c.temp, b, u[b], got[b], want)
			}
		}
	}
}
