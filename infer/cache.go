package infer

import (
	"fmt"
	"slices"

	"gorgonia.org/tensor"
)

// Cache is the self-attention K/V cache of a batch of sequences: for each decoder layer one
// key and one value tensor [Batch, KVHeads, MaxLen, HeadDim], filled one position per step,
// and each sequence's number of cached positions.
type Cache struct {
	Layers, Batch, KVHeads, MaxLen, HeadDim int
	K, V                                    []*tensor.Dense
	Len                                     []int
	scratch                                 any // Reorder's buffer: []float32 or []float64
}

// NewCache allocates a zeroed cache of the given element type (float32 or float64).
func NewCache(dt tensor.Dtype, layers, batch, kvHeads, maxLen, headDim int) *Cache {
	c := &Cache{Layers: layers, Batch: batch, KVHeads: kvHeads, MaxLen: maxLen, HeadDim: headDim, Len: make([]int, batch)}
	for i := 0; i < layers; i++ {
		c.K = append(c.K, tensor.New(tensor.Of(dt), tensor.WithShape(batch, kvHeads, maxLen, headDim)))
		c.V = append(c.V, tensor.New(tensor.Of(dt), tensor.WithShape(batch, kvHeads, maxLen, headDim)))
	}
	return c
}

// CacheBytes is the size of a float32 K/V cache: 2·layers·batch·kvHeads·maxLen·headDim·4.
func CacheBytes(layers, batch, kvHeads, maxLen, headDim int) int64 {
	return 2 * int64(layers) * int64(batch) * int64(kvHeads) * int64(maxLen) * int64(headDim) * 4
}

// Append writes the new key and value rows of one layer ([Batch, KVHeads·HeadDim]) at each
// active sequence's current length; it does not advance the lengths (Advance does).
func (c *Cache) Append(layer int, newK, newV *tensor.Dense, active []bool) error {
	if layer < 0 || layer >= c.Layers {
		return fmt.Errorf("cache: layer %d of %d", layer, c.Layers)
	}
	want := tensor.Shape{c.Batch, c.KVHeads * c.HeadDim}
	if !newK.Shape().Eq(want) || !newV.Shape().Eq(want) {
		return fmt.Errorf("cache: new rows %v and %v, want %v", newK.Shape(), newV.Shape(), want)
	}
	for b := 0; b < c.Batch; b++ {
		if !active[b] {
			continue
		}
		if c.Len[b] >= c.MaxLen {
			return fmt.Errorf("cache: sequence %d is full (%d positions)", b, c.MaxLen)
		}
	}
	switch c.K[layer].Dtype() {
	case tensor.Float32:
		appendRows(c, c.K[layer].Data().([]float32), newK.Data().([]float32), active)
		appendRows(c, c.V[layer].Data().([]float32), newV.Data().([]float32), active)
	case tensor.Float64:
		appendRows(c, c.K[layer].Data().([]float64), newK.Data().([]float64), active)
		appendRows(c, c.V[layer].Data().([]float64), newV.Data().([]float64), active)
	default:
		return fmt.Errorf("cache: unsupported dtype %v", c.K[layer].Dtype())
	}
	return nil
}

func appendRows[T float32 | float64](c *Cache, dst, rows []T, active []bool) {
	dk := c.HeadDim
	for b := 0; b < c.Batch; b++ {
		if !active[b] {
			continue
		}
		for g := 0; g < c.KVHeads; g++ {
			src := rows[(b*c.KVHeads+g)*dk : (b*c.KVHeads+g+1)*dk]
			off := ((b*c.KVHeads+g)*c.MaxLen + c.Len[b]) * dk
			copy(dst[off:off+dk], src)
		}
	}
}

// Advance counts one more cached position for each active sequence.
func (c *Cache) Advance(active []bool) {
	for b, a := range active {
		if a {
			c.Len[b]++
		}
	}
}

// Reorder makes sequence b a copy of sequence parents[b] for every b (the beams selected by
// beam search): a gather on the batch axis of every layer's keys and values, copying only
// the filled positions of the sequences that change.
func (c *Cache) Reorder(parents []int) error {
	if len(parents) != c.Batch {
		return fmt.Errorf("cache: %d parents for %d sequences", len(parents), c.Batch)
	}
	identity := true
	for b, p := range parents {
		if p < 0 || p >= c.Batch {
			return fmt.Errorf("cache: parent %d of sequence %d is outside 0..%d", p, b, c.Batch-1)
		}
		identity = identity && p == b
	}
	if identity {
		return nil
	}
	// A sequence that another copies from and that is itself overwritten is saved first (at
	// saved[p] in the buffer, -1 for the others, which are copied straight from their parents).
	saved, need := slices.Repeat([]int{-1}, c.Batch), 0
	for b, p := range parents {
		if p != b && parents[p] != p && saved[p] < 0 {
			saved[p], need = need, need+c.KVHeads*c.Len[p]*c.HeadDim
		}
	}
	lens := make([]int, c.Batch)
	for b, p := range parents {
		lens[b] = c.Len[p]
	}
	for l := 0; l < c.Layers; l++ {
		for _, t := range []*tensor.Dense{c.K[l], c.V[l]} {
			switch d := t.Data().(type) {
			case []float32:
				gatherRows(c, d, parents, saved, need)
			case []float64:
				gatherRows(c, d, parents, saved, need)
			}
		}
	}
	c.Len = lens
	return nil
}

// gatherRows makes sequence b of d (one layer's keys or values) a copy of the filled
// positions of sequence parents[b], for every b whose parent is another; a sequence p with
// saved[p] ≥ 0 is copied aside first, to that offset of a buffer of need elements kept in c
// between calls, since it is overwritten before it is read.
func gatherRows[T float32 | float64](c *Cache, d []T, parents, saved []int, need int) {
	span, row := c.MaxLen*c.HeadDim, c.KVHeads*c.MaxLen*c.HeadDim
	buf, _ := c.scratch.([]T)
	if cap(buf) < need {
		buf = make([]T, need)
		c.scratch = buf
	}
	buf = buf[:need]
	for p, at := range saved {
		n := c.Len[p] * c.HeadDim
		for g := 0; at >= 0 && g < c.KVHeads; g++ {
			copy(buf[at+g*n:at+(g+1)*n], d[p*row+g*span:])
		}
	}
	for b, p := range parents {
		if p == b {
			continue
		}
		n := c.Len[p] * c.HeadDim
		for g := 0; g < c.KVHeads; g++ {
			dst := d[b*row+g*span : b*row+g*span+n]
			if at := saved[p]; at >= 0 {
				copy(dst, buf[at+g*n:])
			} else {
				copy(dst, d[p*row+g*span:])
			}
		}
	}
}
