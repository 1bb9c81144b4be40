package ops_test

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers/gradcheck"
	"mqa/layers/ops"
)

// naiveDecode attends each query head separately: head h uses K/V head h / (H/KV).
func naiveDecode(q, k, v, nk, nv []float64, lens []int, h, kvh, dk, maxLen, window int, scale float64) []float64 {
	out := make([]float64, len(lens)*h*dk)
	for b, n := range lens {
		if n < 0 {
			continue
		}
		for head := 0; head < h; head++ {
			g := head / (h / kvh)
			qv := q[(b*h+head)*dk : (b*h+head+1)*dk]
			var keys, vals [][]float64
			for j := 0; j < n; j++ {
				if window > 0 && j <= n-window {
					continue
				}
				off := ((b*kvh+g)*maxLen + j) * dk
				keys, vals = append(keys, k[off:off+dk]), append(vals, v[off:off+dk])
			}
			if nk != nil {
				off := (b*kvh + g) * dk
				keys, vals = append(keys, nk[off:off+dk]), append(vals, nv[off:off+dk])
			}
			w := make([]float64, len(keys))
			m := math.Inf(-1)
			for j, key := range keys {
				for i := range key {
					w[j] += qv[i] * key[i] * scale
				}
				m = math.Max(m, w[j])
			}
			var sum float64
			for j := range w {
				w[j] = math.Exp(w[j] - m)
				sum += w[j]
			}
			for j, val := range vals {
				for i := range val {
					out[(b*h+head)*dk+i] += w[j] / sum * val[i]
				}
			}
		}
	}
	return out
}

func TestDecodeAttention(t *testing.T) {
	cases := []struct {
		name           string
		h, kvh, window int
		hasNew         bool
		lens           []int
	}{
		{"mha self", 4, 4, 0, true, []int{0, 3, 6}},
		{"gqa self window", 4, 2, 3, true, []int{5, 1, 6}},
		{"mqa self finished row", 4, 1, 0, true, []int{4, -1, 2}},
		{"mqa cross", 4, 1, 0, false, []int{6, 2, 1}},
		{"gqa cross", 6, 3, 0, false, []int{3, 6, 4}},
		{"gqa cross short", 6, 3, 0, false, []int{3, 5, 4}},
		{"mha cross 6", 2, 2, 0, false, []int{3, 1, 2}},
	}
	const dk, maxLen = 4, 6
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			b := len(c.lens)
			randv := func(n int) []float64 { return gradcheck.Random(rng, n) }
			q, k, v := randv(b*c.h*dk), randv(b*c.kvh*maxLen*dk), randv(b*c.kvh*maxLen*dk)
			var nk, nv []float64
			if c.hasNew {
				nk, nv = randv(b*c.kvh*dk), randv(b*c.kvh*dk)
			}
			want := naiveDecode(q, k, v, nk, nv, c.lens, c.h, c.kvh, dk, maxLen, c.window, 0.5)
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				g := G.NewGraph()
				node := func(name string, xs []float64, shape ...int) *G.Node {
					var t *tensor.Dense
					if dt == tensor.Float32 {
						f := make([]float32, len(xs))
						for j, x := range xs {
							f[j] = float32(x)
						}
						t = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(f))
					} else {
						t = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(xs))
					}
					return G.NodeFromAny(g, t, G.WithName(name)) // named: unnamed equal-shaped nodes may be merged
				}
				var nkN, nvN *G.Node
				if c.hasNew {
					nkN, nvN = node("nk", nk, b, c.kvh*dk), node("nv", nv, b, c.kvh*dk)
				}
				lens := gradcheck.Ints(g, "lens", c.lens)
				op := ops.DecodeAttention{Heads: c.h, KVHeads: c.kvh, HeadDim: dk, Scale: 0.5, Window: c.window, HasNew: c.hasNew}
				y, err := ops.NewDecodeAttention(op, node("q", q, b, c.h*dk), node("k", k, b, c.kvh, maxLen, dk), node("v", v, b, c.kvh, maxLen, dk), nkN, nvN, lens)
				if err != nil {
					t.Fatal(err)
				}
				if err := eval(g); err != nil {
					t.Fatal(err)
				}
				tol := 1e-12
				var got []float64
				switch d := y.Value().Data().(type) {
				case []float64:
					got = d
				case []float32:
					tol = 1e-5
					for _, x := range d {
						got = append(got, float64(x))
					}
				}
				for j := range want {
					if math.Abs(got[j]-want[j]) > tol {
						t.Fatalf("%v: element %d = %g, want %g", dt, j, got[j], want[j])
					}
				}
			}
		})
	}
	// Bad shapes and settings are errors, not panics.
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 8))
	kv := G.NewTensor(g, tensor.Float64, 4, G.WithShape(2, 3, 5, 4))
	lens := G.NewVector(g, tensor.Int, G.WithShape(2))
	if _, err := ops.NewDecodeAttention(ops.DecodeAttention{Heads: 2, KVHeads: 2, HeadDim: 4}, x, kv, kv, nil, nil, lens); err == nil {
		t.Error("3 K/V heads for a 2-head op: no error")
	}
	if _, err := ops.NewDecodeAttention(ops.DecodeAttention{Heads: 2, KVHeads: 1, HeadDim: 4, Window: 2}, x, kv, kv, nil, nil, lens); err == nil {
		t.Error("window on cross-attention: no error")
	}
}
