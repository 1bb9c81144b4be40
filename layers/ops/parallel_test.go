package ops

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// randDense is a float32 tensor of the given shape with values in [-3, 3).
func randDense(r *rand.Rand, shape ...int) *tensor.Dense {
	t := newLike(tensor.Float32, shape...)
	for i := range data[float32](t) {
		data[float32](t)[i] = float32(r.Float64()*6 - 3)
	}
	return t
}

// TestParallelKernelsMatchSerial runs each row-parallel kernel on inputs large enough to be
// split, with GOMAXPROCS 4 and 1, and requires the same bits.
func TestParallelKernelsMatchSerial(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const rows, keys, width, vocab = 256, 96, 512, 700 // each case is split (rows × row work ≥ 2·minTaskWork)
	targets := make([]int, rows)
	for i := range targets {
		targets[i] = r.IntN(vocab)
	}
	targets[5] = 0 // an ignored (padding) row
	ids := tensor.New(tensor.WithBacking(targets))
	lengths := tensor.New(tensor.WithBacking([]int{90, 33, 96, 70, 50, 96, 1, 80}))
	logits, scores, x := randDense(r, rows, vocab), randDense(r, 8, keys, keys), randDense(r, rows, width)
	gamma, beta, g, gs := randDense(r, width), randDense(r, width), randDense(r, rows, width), randDense(r, 8, keys, keys)
	half, scores4 := randDense(r, rows, width/2), randDense(r, 8, 12, 16, 64)
	// Decode attention: 8 sequences (one finished), 4 query heads over 2 K/V heads of width
	// 64, a cache of 96 positions.
	decQ, decK, decV, decNew := randDense(r, 8, 4*64), randDense(r, 8, 2, keys, 64), randDense(r, 8, 2, keys, 64), randDense(r, 8, 2*64)
	decLens := tensor.New(tensor.WithBacking([]int{90, 33, 95, -1, 50, 95, 0, 80}))
	run := func(procs int, op G.Op, in []G.Value) []float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		v, err := op.Do(in...)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := v.Data().(float32); ok {
			return []float32{s}
		}
		return slices.Clone(v.Data().([]float32))
	}
	probs := tensor.New(tensor.WithShape(8, keys, keys),
		tensor.WithBacking(run(1, Softmax{Scale: 0.5, Groups: 1, QueryLen: keys, Causal: true}, []G.Value{scores})))
	cases := []struct {
		name string
		op   G.Op
		in   []G.Value
	}{
		{"softmax", Softmax{Scale: 0.5, Groups: 1, QueryLen: keys, Causal: true, Window: 40, HasLengths: true}, []G.Value{scores, lengths}},
		{"softmax grad", SoftmaxGrad{Scale: 0.5}, []G.Value{probs, gs}},
		{"cross-entropy", CrossEntropy{Smoothing: 0.1, Ignore: 0}, []G.Value{logits, ids}},
		{"cross-entropy grad", CrossEntropyGrad{Smoothing: 0.1, Ignore: 0}, []G.Value{logits, ids, G.NewF32(0.7)}},
		{"layernorm", Norm{Eps: 1e-5}, []G.Value{x, gamma, beta}},
		{"rmsnorm grad x", NormGrad{RMS: true, Eps: 1e-6, Wrt: 0}, []G.Value{x, gamma, g}},
		{"layernorm grad x", NormGrad{Eps: 1e-5, Wrt: 0}, []G.Value{x, gamma, g}},
		{"gelu", Activation{Kind: GELU}, []G.Value{x}},
		{"swiglu", Activation{Kind: SwiGLU}, []G.Value{x}},
		{"relu grad", ActivationGrad{Kind: ReLU}, []G.Value{x, g}},
		{"swiglu grad", ActivationGrad{Kind: SwiGLU}, []G.Value{x, half}},
		{"permute", Permute{Axes: []int{1, 0, 2}}, []G.Value{scores}},
		{"permute 4-D", Permute{Axes: []int{2, 0, 3, 1}}, []G.Value{scores4}},
		{"decode attention", DecodeAttention{Heads: 4, KVHeads: 2, HeadDim: 64, Scale: 0.125, HasNew: true}, []G.Value{decQ, decK, decV, decNew, decNew, decLens}},
		{"decode attention window", DecodeAttention{Heads: 4, KVHeads: 2, HeadDim: 64, Scale: 0.125, Window: 20, HasNew: true}, []G.Value{decQ, decK, decV, decNew, decNew, decLens}},
		{"decode cross-attention", DecodeAttention{Heads: 4, KVHeads: 2, HeadDim: 64, Scale: 0.125}, []G.Value{decQ, decK, decV, decLens}},
	}
	for _, c := range cases {
		serial, par := run(1, c.op, c.in), run(4, c.op, c.in)
		if !slices.Equal(serial, par) {
			t.Errorf("%s: parallel result differs from the serial one", c.name)
		}
		if slices.Equal(serial, make([]float32, len(serial))) {
			t.Errorf("%s: all zero; the test inputs are wrong", c.name)
		}
	}
}

func TestParallelRowsCoversEveryRowOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	for _, tc := range []struct{ rows, work, wantTasks int }{
		{0, 1 << 20, 1}, {1, 1 << 20, 1}, {10, 1, 1}, {1000, minTaskWork, 3}, {2, minTaskWork, 2},
	} {
		seen := make([]int32, tc.rows)
		var tasks int32
		var mu = make(chan struct{}, 1)
		parallelRows(tc.rows, tc.work, func(lo, hi int) {
			mu <- struct{}{}
			tasks++
			for i := lo; i < hi; i++ {
				seen[i]++
			}
			<-mu
		})
		for i, n := range seen {
			if n != 1 {
				t.Errorf("%+v: row %d done %d times", tc, i, n)
			}
		}
		if int(tasks) != tc.wantTasks {
			t.Errorf("%+v: %d tasks, want %d", tc, tasks, tc.wantTasks)
		}
	}
}
