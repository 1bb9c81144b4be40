package infer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"gorgonia.org/tensor"
)

// TestCacheReorder: after Reorder, every sequence holds the filled positions its parent
// held before, for every layer, K and V, head and element (distinct random values, so a
// wrong row, head or offset shows), and its parent's length; parents that are themselves
// overwritten (swaps, cycles, a beam copied to all) and repeated calls with a buffer of
// another size included.
func TestCacheReorder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		c := NewCache(dt, 2, 6, 3, 9, 4)
		for _, parents := range [][]int{
			{1, 0, 2, 3, 4, 5}, {1, 2, 0, 3, 5, 4}, {0, 0, 0, 0, 0, 0}, {5, 5, 1, 1, 2, 0}, {3, 3, 3, 0, 0, 0}, {0, 1, 2, 3, 4, 5},
			{2, 2, 2, 2, 2, 2}, {4, 0, 4, 1, 1, 3},
		} {
			for b := range c.Len {
				c.Len[b] = rng.IntN(c.MaxLen + 1)
			}
			before := make([][]float64, 0, 2*c.Layers)
			for l := 0; l < c.Layers; l++ {
				for _, x := range []*tensor.Dense{c.K[l], c.V[l]} {
					before = append(before, fill(x, rng))
				}
			}
			lens := slices.Clone(c.Len)
			if err := c.Reorder(parents); err != nil {
				t.Fatal(err)
			}
			i := 0
			for l := 0; l < c.Layers; l++ {
				for _, x := range []*tensor.Dense{c.K[l], c.V[l]} {
					after := values(x)
					for b, p := range parents {
						if c.Len[b] != lens[p] {
							t.Fatalf("%v %v: sequence %d has length %d, its parent %d had %d", dt, parents, b, c.Len[b], p, lens[p])
						}
						for g := 0; g < c.KVHeads; g++ {
							for pos := 0; pos < lens[p]; pos++ {
								for e := 0; e < c.HeadDim; e++ {
									at := func(row int) int { return ((row*c.KVHeads+g)*c.MaxLen+pos)*c.HeadDim + e }
									if after[at(b)] != before[i][at(p)] {
										t.Fatalf("%v %v layer %d: sequence %d head %d position %d element %d is %v, its parent %d held %v",
											dt, parents, l, b, g, pos, e, after[at(b)], p, before[i][at(p)])
									}
								}
							}
						}
					}
					i++
				}
			}
		}
	}
}

// fill writes distinct random values into x and returns them.
func fill(x *tensor.Dense, rng *rand.Rand) []float64 {
	out := make([]float64, x.Shape().TotalSize())
	for i := range out {
		out[i] = float64(i) + rng.Float64()/2
	}
	switch d := x.Data().(type) {
	case []float32:
		for i, v := range out {
			d[i] = float32(v)
			out[i] = float64(d[i])
		}
	case []float64:
		copy(d, out)
	}
	return out
}

// values reads x as float64s.
func values(x *tensor.Dense) []float64 {
	switch d := x.Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out
	case []float64:
		return slices.Clone(d)
	}
	return nil
}
