package layers

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers/ops"
)

// Attention is multi-head attention with Heads query heads and KVHeads key/value heads:
// KVHeads = Heads is multi-head (MHA), 1 is multi-query (MQA, Shazeer 2019), in between is
// grouped-query (GQA, Ainslie et al. 2023). Each K/V head is shared by Heads/KVHeads query
// heads, and the products are batched as in the paper's einsum form: the queries of the
// heads that share a K/V head form one [group·T, d_k] matrix that is multiplied by that
// head's keys once, so shared keys and values are never copied per query head.
type Attention struct {
	Name                         string
	Dim, Heads, KVHeads, HeadDim int
	Bias                         bool
	RoPE                         bool
	Causal                       bool
	Window                       int // 0: unlimited; W: each query sees at most W keys (itself and W−1 before)
}

// Validate checks the head counts.
func (a Attention) Validate() error {
	switch {
	case a.Heads < 1 || a.KVHeads < 1 || a.HeadDim < 1:
		return fmt.Errorf("%s: heads %d, kv heads %d and head width %d must be positive", a.Name, a.Heads, a.KVHeads, a.HeadDim)
	case a.Heads%a.KVHeads != 0:
		return fmt.Errorf("%s: %d query heads are not divisible by %d key/value heads", a.Name, a.Heads, a.KVHeads)
	case a.RoPE && a.HeadDim%2 != 0:
		return fmt.Errorf("%s: rotary positions need an even head width, got %d", a.Name, a.HeadDim)
	case a.Window < 0:
		return fmt.Errorf("%s: window %d is negative", a.Name, a.Window)
	}
	return nil
}

// Shape describes one attention call: Batch sequences of QueryLen queries over KeyLen keys.
type Shape struct {
	Batch, QueryLen, KeyLen int
	// KeyOffset is the position of the first query minus that of the first key (0 in
	// training; the number of cached keys in a decode step).
	KeyOffset int
	// KeyLens, if not nil, holds each sequence's number of valid keys ([Batch] ints).
	KeyLens *G.Node
	// QueryPos and KeyPos hold the positions of the query and key rows, for RoPE.
	QueryPos, KeyPos *G.Node
}

// Forward attends from x [Batch·QueryLen, Dim] to mem [Batch·KeyLen, Dim]; mem = x is
// self-attention, an encoder output is cross-attention. The result is [Batch·QueryLen, Dim].
func (a Attention) Forward(b *Graph, x, mem *G.Node, s Shape) (*G.Node, error) {
	q, err := a.Queries(b, x, s)
	if err != nil {
		return nil, err
	}
	k, v, err := a.KeysValues(b, mem, s)
	if err != nil {
		return nil, err
	}
	return a.Attend(b, q, k, v, s)
}

// group is the number of query heads that share one K/V head.
func (a Attention) group() int { return a.Heads / a.KVHeads }

// RoPEBase is the base of the rotary frequencies: pair j of a head turns by
// position · RoPEBase^(−2j/HeadDim).
const RoPEBase = 10000

// rope is the rotation of the queries and the keys, which must agree.
func (a Attention) rope() ops.RoPE { return ops.RoPE{HeadDim: a.HeadDim, Base: RoPEBase} }

// Queries projects x to the queries in grouped layout [Batch·KVHeads, group·QueryLen, HeadDim].
func (a Attention) Queries(b *Graph, x *G.Node, s Shape) (*G.Node, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	q, err := Linear{Name: a.Name + ".q", In: a.Dim, Out: a.Heads * a.HeadDim, Bias: a.Bias}.Forward(b, x)
	if err != nil {
		return nil, err
	}
	if a.RoPE {
		if q, err = a.rope().Apply(q, s.QueryPos); err != nil {
			return nil, err
		}
	}
	// [B·T, g·r·dk] → [B, T, g, r, dk] → [B, g, r, T, dk] → [B·g, r·T, dk]
	g, r, t := a.KVHeads, a.group(), s.QueryLen
	if q, err = G.Reshape(q, tensor.Shape{s.Batch, t, g, r, a.HeadDim}); err != nil {
		return nil, err
	}
	if q, err = ops.NewPermute(q, 0, 2, 3, 1, 4); err != nil {
		return nil, err
	}
	return G.Reshape(q, tensor.Shape{s.Batch * g, r * t, a.HeadDim})
}

// KeysValues projects mem to keys and values [Batch·KVHeads, KeyLen, HeadDim].
func (a Attention) KeysValues(b *Graph, mem *G.Node, s Shape) (k, v *G.Node, err error) {
	if err := a.Validate(); err != nil {
		return nil, nil, err
	}
	if k, err = a.project(b, mem, "k", s.KeyPos, s); err != nil {
		return nil, nil, err
	}
	if v, err = a.project(b, mem, "v", nil, s); err != nil {
		return nil, nil, err
	}
	return k, v, nil
}

// KVProjection returns the un-permuted key or value projection of mem: [rows, KVHeads·HeadDim],
// with RoPE applied to keys at the given positions. Decoding caches these rows.
func (a Attention) KVProjection(b *Graph, mem *G.Node, which string, pos *G.Node) (*G.Node, error) {
	y, err := Linear{Name: a.Name + "." + which, In: a.Dim, Out: a.KVHeads * a.HeadDim, Bias: a.Bias}.Forward(b, mem)
	if err != nil {
		return nil, err
	}
	if a.RoPE && which == "k" {
		return a.rope().Apply(y, pos)
	}
	return y, nil
}

func (a Attention) project(b *Graph, mem *G.Node, which string, pos *G.Node, s Shape) (*G.Node, error) {
	y, err := a.KVProjection(b, mem, which, pos)
	if err != nil {
		return nil, err
	}
	// [B·S, g·dk] → [B, S, g, dk] → [B, g, S, dk] → [B·g, S, dk]; with one K/V head the
	// rows are already in order.
	if a.KVHeads == 1 {
		return G.Reshape(y, tensor.Shape{s.Batch, s.KeyLen, a.HeadDim})
	}
	if y, err = G.Reshape(y, tensor.Shape{s.Batch, s.KeyLen, a.KVHeads, a.HeadDim}); err != nil {
		return nil, err
	}
	if y, err = ops.NewPermute(y, 0, 2, 1, 3); err != nil {
		return nil, err
	}
	return G.Reshape(y, tensor.Shape{s.Batch * a.KVHeads, s.KeyLen, a.HeadDim})
}

// Scale is the factor 1/√d_k of the attention logits.
func (a Attention) Scale() float64 { return 1 / math.Sqrt(float64(a.HeadDim)) }

// Output is the output projection of the heads' values o [rows, Heads·HeadDim]: [rows, Dim].
func (a Attention) Output(b *Graph, o *G.Node) (*G.Node, error) {
	return Linear{Name: a.Name + ".o", In: a.Heads * a.HeadDim, Out: a.Dim, Bias: a.Bias}.Forward(b, o)
}

// Softmax returns the masked softmax op for a call of this shape.
func (a Attention) Softmax(s Shape) ops.Softmax {
	return ops.Softmax{
		Scale:      a.Scale(),
		Groups:     a.KVHeads,
		QueryLen:   s.QueryLen,
		KeyOffset:  s.KeyOffset,
		Causal:     a.Causal,
		Window:     a.Window,
		HasLengths: s.KeyLens != nil,
	}
}

// Attend combines grouped queries q [B·g, r·T, dk] with keys and values [B·g, S, dk] and
// applies the output projection: [B·T, Dim].
func (a Attention) Attend(b *Graph, q, k, v *G.Node, s Shape) (*G.Node, error) {
	logits, err := G.BatchedMatMul(q, k, false, true)
	if err != nil {
		return nil, fmt.Errorf("%s: q·kᵀ: %w", a.Name, err)
	}
	p, err := a.Softmax(s).Apply(logits, s.KeyLens)
	if err != nil {
		return nil, err
	}
	o, err := G.BatchedMatMul(p, v)
	if err != nil {
		return nil, fmt.Errorf("%s: p·v: %w", a.Name, err)
	}
	// [B·g, r·T, dk] → [B, g, r, T, dk] → [B, T, g, r, dk] → [B·T, h·dk]
	g, r, t := a.KVHeads, a.group(), s.QueryLen
	if o, err = G.Reshape(o, tensor.Shape{s.Batch, g, r, t, a.HeadDim}); err != nil {
		return nil, err
	}
	if o, err = ops.NewPermute(o, 0, 3, 1, 2, 4); err != nil {
		return nil, err
	}
	if o, err = G.Reshape(o, tensor.Shape{s.Batch * t, a.Heads * a.HeadDim}); err != nil {
		return nil, err
	}
	return a.Output(b, o)
}
