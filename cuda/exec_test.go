//go:build mqacuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers"
	"mqa/models"
	"mqa/train"
)

type variant struct {
	name                 string
	task, act, norm, pos string
	kv                   int
	tie, bias            bool
	window               int
	dropout              float64
}

var variants = []variant{
	{"lm-relu-layer-learned-mha", models.TaskLM, "relu", "layer", layers.PosLearned, 4, false, true, 0, 0.1},
	{"lm-gelu-rms-rope-gqa2-window", models.TaskLM, "gelu", "rms", layers.PosRoPE, 2, true, false, 3, 0.2},
	{"translate-swiglu-sinusoidal-mqa", models.TaskTranslate, "swiglu", "layer", layers.PosSinusoidal, 1, true, true, 0, 0.1},
	{"lm-gelu_tanh-layer-sinusoidal-gqa2", models.TaskLM, "gelu_tanh", "layer", layers.PosSinusoidal, 2, false, true, 0, 0.1},
}

func (v variant) config(t *testing.T) models.Config {
	cfg, err := models.Preset("tiny", v.task, 37)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Activation, cfg.Norm, cfg.Positions, cfg.KVHeads = v.act, v.norm, v.pos, v.kv
	cfg.TieEmbeddings, cfg.Bias, cfg.Window, cfg.Dropout = v.tie, v.bias, v.window, v.dropout
	return cfg
}

// randomBatch makes a batch with some padding (pad targets add no loss).
func randomBatch(cfg models.Config, shape models.Shape, r *rand.Rand) train.Batch {
	b := train.Batch{Shape: shape}
	n := shape.Batch * shape.TgtLen
	for i := 0; i < n; i++ {
		b.Tokens = append(b.Tokens, 1+r.IntN(cfg.Vocab-1))
		t := 1 + r.IntN(cfg.Vocab-1)
		if i%shape.TgtLen == shape.TgtLen-1 && i/shape.TgtLen == 0 {
			t = models.PadID
		}
		b.Targets = append(b.Targets, t)
	}
	if shape.SrcLen > 0 {
		for s := 0; s < shape.Batch; s++ {
			l := shape.SrcLen - s%2
			b.SrcLens = append(b.SrcLens, l)
			for j := 0; j < shape.SrcLen; j++ {
				id := 1 + r.IntN(cfg.Vocab-1)
				if j >= l {
					id = models.PadID
				}
				b.Src = append(b.Src, id)
			}
		}
	}
	return b
}

// relErr is max|a−b| / max|b| (NaN anywhere counts as infinite).
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		if math.IsNaN(float64(a[i])) || math.IsNaN(float64(b[i])) {
			return math.Inf(1)
		}
		num = math.Max(num, math.Abs(float64(a[i])-float64(b[i])))
		den = math.Max(den, math.Abs(float64(b[i])))
	}
	if den == 0 {
		if num == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return num / den
}

func floatsOf(v G.Value) []float32 {
	switch x := v.Data().(type) {
	case []float32:
		return x
	case float32:
		return []float32{x}
	}
	return nil
}

// Every node of a training graph (forward and backward: every op kind the models use)
// on the GPU against Gorgonia's TapeMachine on the CPU, same inputs, same dropout masks.
func TestNodeParity(t *testing.T) {
	for _, mode := range []string{"fp32", "tf32", "bf16"} {
		for _, v := range variants {
			t.Run(mode+"/"+v.name, func(t *testing.T) {
				cfg := v.config(t)
				s := train.DefaultSettings(10)
				s.LabelSmoothing, s.Seed = 0.1, 7
				tr, err := train.NewTrainer(cfg, nil, s, "cpu")
				if err != nil {
					t.Fatal(err)
				}
				tr.DropoutStep = 3
				e, err := New(tr, Options{Math: mode})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				shape := models.Shape{Batch: 3, TgtLen: 6}
				if cfg.Task == models.TaskTranslate {
					shape.SrcLen = 5
				}
				b := randomBatch(cfg, shape, rand.New(rand.NewPCG(1, 2)))
				plan, g, gpu, err := e.NodeValues(b)
				if err != nil {
					t.Fatal(err)
				}
				if err := train.Feed(g, b); err != nil {
					t.Fatal(err)
				}
				vm := G.NewTapeMachine(g.G)
				defer vm.Close()
				if err := vm.RunAll(); err != nil {
					t.Fatal(err)
				}
				// Each op on the CPU (its Do) from the GPU's values of its inputs, against
				// the GPU's output: forward and gradient ops alike, without error propagation.
				worst := map[Kind]float64{}
				for i, pn := range plan.Nodes {
					if gpu[i] == nil || !isComputed(pn.Kind) {
						continue
					}
					var inputs []G.Value
					for _, j := range pn.In {
						in := plan.Nodes[j]
						if in.Int || in.Kind == KConst {
							inputs = append(inputs, in.Node.Value())
							continue
						}
						if in.Shape == nil {
							inputs = append(inputs, G.NewF32(gpu[j][0]))
							continue
						}
						inputs = append(inputs, tensor.New(tensor.WithShape(in.Shape...), tensor.WithBacking(append([]float32(nil), gpu[j]...))))
					}
					out, err := pn.Node.Op().Do(inputs...)
					if err != nil {
						t.Fatalf("%v on the CPU: %v", pn.Node.Op(), err)
					}
					want := floatsOf(out)
					if len(want) != len(gpu[i]) {
						t.Fatalf("%v: %d CPU values, %d GPU values", pn.Node.Op(), len(want), len(gpu[i]))
					}
					r := relErr(gpu[i], want)
					if pn.Kind == KColSum {
						// a column sum is accurate relative to Σ|x|, not to the sum: the gradient of
						// a key bias is exactly 0 in exact arithmetic (softmax ignores a constant
						// shift), so both sides hold rounding noise there
						r = relErrFloor(gpu[i], want, colAbsSum(gpu[pn.In[0]], pn.Size))
					}
					worst[pn.Kind] = maxf(worst[pn.Kind], r)
					tol := 1e-5
					if mode == "tf32" && (pn.Kind == KMatMul || pn.Kind == KBatchedMatMul) {
						tol = 1e-3
					}
					if mode == "bf16" && (pn.Kind == KMatMul || pn.Kind == KBatchedMatMul) {
						tol = 2e-2 // inputs rounded to 8 significant bits
					}
					if r > tol {
						var ins []string
						for _, j := range pn.In {
							in := plan.Nodes[j]
							ins = append(ins, fmt.Sprintf("%s %v %v (node %d, root %d)", in.Kind, in.Node.Op(), in.Shape, j, in.Alias))
						}
						t.Errorf("%s %v %v (node %d): relative error %.3g > %g; inputs %v", pn.Kind, pn.Node.Op(), pn.Shape, i, r, tol, ins)
					}
				}
				var ks []string
				for k, r := range worst {
					ks = append(ks, fmt.Sprintf("%s=%.2g", k, r))
				}
				sort.Strings(ks)
				t.Logf("%s %s worst relative error per op kind: %v", mode, v.name, ks)
				l := relErr(gpu[plan.Loss], floatsOf(plan.Nodes[plan.Loss].Node.Value()))
				// gradients relative to max(their own largest value, 1e-3 × the largest gradient
				// of the model): the key-bias gradients are 0 up to rounding
				var gmax float64
				for _, gi := range plan.Grads {
					for _, x := range gpu[gi] {
						gmax = maxf(gmax, math.Abs(float64(x)))
					}
				}
				var gw, diff2, norm2 float64
				for _, gi := range plan.Grads {
					want := floatsOf(plan.Nodes[gi].Node.Value())
					gw = maxf(gw, relErrFloor(gpu[gi], want, 1e-3*gmax))
					for k, x := range want {
						d := float64(gpu[gi][k]) - float64(x)
						diff2, norm2 = diff2+d*d, norm2+float64(x)*float64(x)
					}
				}
				all := math.Sqrt(diff2 / norm2) // all gradients as one vector
				t.Logf("%s %s: loss relative error %.3g, worst gradient %.3g, all gradients %.3g", mode, v.name, l, gw, all)
				// the whole step (loss and every parameter gradient) against the CPU executor's graph
				lt, gt := 1e-5, 1e-4
				switch mode {
				case "tf32":
					lt, gt = 1e-3, 2e-2 // per op ≤ 1e-3 above; TF32 rounding compounds through the whole backward pass
				case "bf16":
					// per op ≤ 2e-2 above; through a whole step BF16 rounding reaches 0.28 on the
					// smallest gradients (key biases, 0 up to rounding): compare all gradients as
					// one vector instead, which a wrong copy or index would put near 1
					lt, gt = 1e-2, math.Inf(1)
					if all > 5e-2 {
						t.Errorf("bf16 whole step: all gradients' relative error %.3g (limit 5e-2)", all)
					}
				}
				if l > lt || gw > gt {
					t.Errorf("%s whole step: loss relative error %.3g (limit %g), worst gradient %.3g (limit %g)", mode, l, lt, gw, gt)
				}
			})
		}
	}
}

func maxf(a, b float64) float64 { return math.Max(a, b) }

// relErrFloor is max|a−b| / max(max|b|, floor).
func relErrFloor(a, b []float32, floor float64) float64 {
	var num, den float64
	for i := range a {
		if math.IsNaN(float64(a[i])) || math.IsNaN(float64(b[i])) {
			return math.Inf(1)
		}
		num = maxf(num, math.Abs(float64(a[i])-float64(b[i])))
		den = maxf(den, math.Abs(float64(b[i])))
	}
	den = maxf(den, floor)
	if den == 0 {
		return num
	}
	return num / den
}

// colAbsSum is the largest Σ_r |x[r, j]| over the columns of x viewed as [len/d, d].
func colAbsSum(x []float32, d int) float64 {
	acc := make([]float64, d)
	for i, v := range x {
		acc[i%d] += math.Abs(float64(v))
	}
	var m float64
	for _, v := range acc {
		m = maxf(m, v)
	}
	return m
}

// patternBatches are learnable LM batches: each sequence follows x → (5x+3) mod (V−1) + 1.
func patternBatches(cfg models.Config, shape models.Shape, n int, seed uint64) []train.Batch {
	r := rand.New(rand.NewPCG(seed, 9))
	var out []train.Batch
	for k := 0; k < n; k++ {
		b := train.Batch{Shape: shape}
		for s := 0; s < shape.Batch; s++ {
			x := 1 + r.IntN(cfg.Vocab-1)
			for j := 0; j < shape.TgtLen; j++ {
				b.Tokens = append(b.Tokens, x)
				x = (5*x+3)%(cfg.Vocab-1) + 1
				b.Targets = append(b.Targets, x)
			}
		}
		out = append(out, b)
	}
	return out
}

// trainSteps trains a new trainer on device one batch per step and returns the losses.
func trainSteps(t *testing.T, cfg models.Config, s train.Settings, device string, data []train.Batch) ([]float64, *train.Trainer) {
	t.Helper()
	tr, err := train.NewTrainer(cfg, nil, s, device)
	if err != nil {
		t.Fatal(err)
	}
	losses := make([]float64, len(data))
	for i := range data {
		st, err := tr.TrainStep(data[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		losses[i] = st.Loss
	}
	return losses, tr
}

// The tiny LM trained 200 steps on the CPU and on the GPU (strict FP32, eager and with CUDA
// graphs) from the same seed: the loss curves agree to 1e-3 relative at every step, the
// GPU's parameters synced back evaluate the same on the CPU, and accumulation agrees.
func TestTrainCurveParity(t *testing.T) {
	cfg, err := models.Preset("tiny", models.TaskLM, 48)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dropout = 0.1
	shape := models.Shape{Batch: 8, TgtLen: 32}
	const steps = 200
	data := patternBatches(cfg, shape, steps, 1)
	s := train.DefaultSettings(steps)
	s.Seed, s.LabelSmoothing = 5, 0.1
	curve := func(device string, graphs bool) ([]float64, *train.Trainer) {
		t.Setenv("MQA_CUDA_MATH", "fp32")
		if graphs {
			t.Setenv("MQA_CUDA_GRAPHS", "1")
		} else {
			t.Setenv("MQA_CUDA_GRAPHS", "0")
		}
		return trainSteps(t, cfg, s, device, data)
	}
	cpu, trCPU := curve("cpu", false)
	defer trCPU.Close()
	for _, graphs := range []bool{false, true} {
		gpu, trGPU := curve("cuda", graphs)
		var worst float64
		for i := range cpu {
			r := math.Abs(gpu[i]-cpu[i]) / math.Abs(cpu[i])
			worst = maxf(worst, r)
			if r > 1e-3 {
				t.Errorf("graphs=%v step %d: GPU loss %.6f, CPU %.6f (relative %.2g)", graphs, i+1, gpu[i], cpu[i], r)
			}
		}
		t.Logf("graphs=%v: 200 steps, loss %.4f → %.4f (CPU %.4f → %.4f), worst relative difference %.3g",
			graphs, gpu[0], gpu[steps-1], cpu[0], cpu[steps-1], worst)
		if err := trGPU.Sync(); err != nil {
			t.Fatal(err)
		}
		evalData := patternBatches(cfg, shape, 2, 99)
		ec, err := trCPU.Evaluate(evalData)
		if err != nil {
			t.Fatal(err)
		}
		eg, err := train.Evaluate(cfg, trGPU.Params, evalData) // GPU-trained weights on the CPU
		if err != nil {
			t.Fatal(err)
		}
		egGPU, err := trGPU.Evaluate(evalData)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("validation NLL: CPU-trained %.5f, GPU-trained on CPU %.5f, on GPU %.5f", ec.NLL, eg.NLL, egGPU.NLL)
		if math.Abs(eg.NLL-ec.NLL)/ec.NLL > 1e-3 || math.Abs(egGPU.NLL-eg.NLL)/eg.NLL > 1e-5 {
			t.Errorf("validation NLL differs: CPU %.6f, GPU-trained on CPU %.6f, on GPU %.6f", ec.NLL, eg.NLL, egGPU.NLL)
		}
		trGPU.Close()
	}
	// accumulation over two micro-batches
	s.Accum = 2
	a, _ := train.NewTrainer(cfg, nil, s, "cpu")
	t.Setenv("MQA_CUDA_GRAPHS", "0")
	bg, err := train.NewTrainer(cfg, nil, s, "cuda")
	if err != nil {
		t.Fatal(err)
	}
	defer bg.Close()
	for i := 0; i < 5; i++ {
		sa, err := a.TrainStep(data[2*i : 2*i+2])
		if err != nil {
			t.Fatal(err)
		}
		sb, err := bg.TrainStep(data[2*i : 2*i+2])
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(sa.Loss-sb.Loss)/sa.Loss > 1e-4 || math.Abs(sa.GradNorm-sb.GradNorm)/sa.GradNorm > 1e-3 {
			t.Errorf("accum step %d: CPU loss %.6f norm %.6f, GPU loss %.6f norm %.6f", i, sa.Loss, sa.GradNorm, sb.Loss, sb.GradNorm)
		}
	}
}

// The tiny LM trained 200 steps on the GPU in strict FP32, TF32 and BF16 from the same seed:
// the reduced-precision runs reach a held-out NLL within 1 % (or 0.005 nats, for these
// near-zero NLLs) of FP32's.
func TestReducedPrecisionTraining(t *testing.T) {
	cfg, err := models.Preset("tiny", models.TaskLM, 48)
	if err != nil {
		t.Fatal(err)
	}
	shape := models.Shape{Batch: 8, TgtLen: 32}
	const steps = 200
	data := patternBatches(cfg, shape, steps, 1)
	evalData := patternBatches(cfg, shape, 4, 99)
	s := train.DefaultSettings(steps)
	s.Seed, s.LabelSmoothing = 5, 0.1
	t.Setenv("MQA_CUDA_GRAPHS", "1")
	nll := map[string]float64{}
	for _, mode := range []string{"fp32", "tf32", "bf16"} {
		t.Setenv("MQA_CUDA_MATH", mode)
		losses, tr := trainSteps(t, cfg, s, "cuda", data)
		ev, err := tr.Evaluate(evalData)
		tr.Close()
		if err != nil {
			t.Fatal(err)
		}
		nll[mode] = ev.NLL
		t.Logf("%s: train loss %.4f → %.4f, held-out NLL %.5f", mode, losses[0], losses[steps-1], ev.NLL)
	}
	for _, mode := range []string{"tf32", "bf16"} {
		if d := math.Abs(nll[mode] - nll["fp32"]); d > math.Max(0.01*nll["fp32"], 0.005) {
			t.Errorf("%s held-out NLL %.5f, FP32 %.5f: differs by %.3g", mode, nll[mode], nll["fp32"], d)
		}
	}
}

// The norm kernels (a warp per row up to normRowsMax, a block per row above it), with and
// without the fused residual sum, layer and RMS, against float64 sums on random rows; the bf16
// copy they write is the output rounded.
func TestNormKernels(t *testing.T) {
	cfg, _ := models.Preset("tiny", models.TaskLM, 37)
	dec, _ := newTestDecoder(t, cfg, 1, DefaultDecodeOptions())
	rng := rand.New(rand.NewPCG(5, 6))
	const rows, eps = 7, 1e-5
	for _, dim := range []int{48, 512, 1000, normRowsMax, normRowsMax + 1, 1536} {
		for _, rms := range []bool{false, true} {
			for _, add := range []bool{false, true} {
				vals := make([][]float32, 4) // a, b, gamma, beta
				for k, n := range []int{rows * dim, rows * dim, dim, dim} {
					vals[k] = make([]float32, n)
					for i := range vals[k] {
						vals[k][i] = float32(rng.NormFloat64()*2 + 0.5)
					}
				}
				a, b, gamma, beta := vals[0], vals[1], vals[2], vals[3]
				want, wantSum := make([]float32, rows*dim), make([]float32, rows*dim)
				for r := range rows {
					x := make([]float64, dim)
					var mean, ss float64
					for j := range x {
						x[j] = float64(a[r*dim+j])
						if add {
							x[j] = float64(a[r*dim+j] + b[r*dim+j])
						}
						wantSum[r*dim+j] = float32(x[j])
						mean += x[j] / float64(dim)
					}
					if rms {
						mean = 0
					}
					for _, v := range x {
						ss += (v - mean) * (v - mean)
					}
					rs := 1 / math.Sqrt(ss/float64(dim)+eps)
					for j, v := range x {
						o := (v - mean) * rs * float64(gamma[j])
						if !rms {
							o += float64(beta[j])
						}
						want[r*dim+j] = float32(o)
					}
				}
				got, gotSum, gotHalf := make([]float32, rows*dim), make([]float32, rows*dim), make([]uint16, rows*dim)
				err := dec.rt.w.do(func() error {
					d := dec.rt.d
					n := rows * dim
					buf, err := d.alloc(int64(4*(4*n+2*dim)+2*n), "test norm")
					if err != nil {
						return err
					}
					defer d.free(buf)
					da, db, dy, ds := buf, buf.add(4*n), buf.add(8*n), buf.add(12*n)
					dg, dbeta, dyh := buf.add(16*n), buf.add(16*n+4*dim), buf.add(16*n+8*dim)
					for _, u := range []struct {
						p dptr
						v []float32
					}{{da, a}, {db, b}, {dg, gamma}, {dbeta, beta}} {
						if err := d.upload(u.p, unsafe.Pointer(&u.v[0]), 4*len(u.v)); err != nil {
							return err
						}
					}
					var sum, bp, betap dptr
					if add {
						sum, bp = ds, db
					}
					if !rms {
						betap = dbeta
					}
					if err := d.norm(dy, dyh, sum, da, bp, dg, betap, rows, dim, rms, eps); err != nil {
						return err
					}
					if err := d.download(unsafe.Pointer(&got[0]), dy, 4*n); err != nil {
						return err
					}
					if err := d.download(unsafe.Pointer(&gotHalf[0]), dyh, 2*n); err != nil {
						return err
					}
					if !add {
						return nil
					}
					return d.download(unsafe.Pointer(&gotSum[0]), ds, 4*n)
				})
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(got, want); e > 5e-6 {
					t.Errorf("dim %d rms %v add %v: relative error %.2g", dim, rms, add, e)
				}
				if add && !slices.Equal(gotSum, wantSum) {
					t.Errorf("dim %d rms %v: the residual sum differs", dim, rms)
				}
				for i, x := range got {
					if gotHalf[i] != toBF16(x) {
						t.Errorf("dim %d rms %v add %v: bf16 copy %d is %#04x, want %#04x", dim, rms, add, i, gotHalf[i], toBF16(x))
						break
					}
				}
			}
		}
	}
}

// Each target's NLL from the GPU's evaluation graph (the cross-entropy kernel's per-row
// losses) against the CPU's, for a model trained a few steps on the GPU so that the NLLs
// differ from token to token; padding scores 0.
func TestTokenNLLParity(t *testing.T) {
	t.Setenv("MQA_CUDA_MATH", "fp32")
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			cfg := v.config(t)
			shape := models.Shape{Batch: 3, TgtLen: 7}
			if v.task == models.TaskTranslate {
				shape.SrcLen = 5
			}
			r := rand.New(rand.NewPCG(17, 3))
			seen := randomBatch(cfg, shape, r)
			_, gpu := trainSteps(t, cfg, train.DefaultSettings(30), "cuda", slices.Repeat([]train.Batch{seen}, 30))
			defer gpu.Close()
			if err := gpu.Sync(); err != nil {
				t.Fatal(err)
			}
			cpu, err := train.NewTrainer(cfg, gpu.Params, train.DefaultSettings(30), "cpu")
			if err != nil {
				t.Fatal(err)
			}
			defer cpu.Close()
			batches := []train.Batch{seen, randomBatch(cfg, shape, r)}
			want, err := cpu.TokenNLL(batches)
			if err != nil {
				t.Fatal(err)
			}
			got, err := gpu.TokenNLL(batches)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := math.Inf(1), 0.0
			for k, b := range batches {
				for i, target := range b.Targets {
					if target == models.PadID && got[k][i] != 0 {
						t.Errorf("batch %d target %d is padding but scores %g", k, i, got[k][i])
					}
					if math.Abs(got[k][i]-want[k][i]) > 1e-4*math.Max(1, want[k][i]) {
						t.Errorf("batch %d target %d: GPU NLL %.6f, CPU %.6f", k, i, got[k][i], want[k][i])
					}
					if target != models.PadID {
						lo, hi = math.Min(lo, want[k][i]), math.Max(hi, want[k][i])
					}
				}
			}
			if hi-lo < 0.5 {
				t.Errorf("token NLLs span only %.3f..%.3f: too uniform to show wrong indexing", lo, hi)
			}
		})
	}
}
