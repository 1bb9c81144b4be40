package models

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers"
	"mqa/layers/ops"
)

// DecodeStep is the graph of one incremental decoding step for Batch sequences: one new
// token per sequence goes in, the next-token logits and each decoder layer's new key and
// value rows come out. The keys and values of earlier positions come in as a cache, one
// [Batch, KVHeads, MaxLen, HeadDim] tensor per layer for keys and one for values; the
// caller appends the new rows to the cache after each run (see infer.Cache).
//
// It is built from the same layer definitions and parameter names as the training graph
// (Build), so the same Params serve both; only the attention is replaced by
// ops.DecodeAttention over the cache.
type DecodeStep struct {
	*layers.Graph
	Cfg           Config
	Batch, MaxLen int
	SrcLen        int // source length of the cross-attention memory (translation), else 0

	// Inputs, [Batch] ints: the new tokens, their positions (for the position encodings
	// and RoPE) and the number of cached rows of each sequence (the position, or −1 for a
	// finished sequence, whose attention is skipped).
	Tokens, Positions, Lengths *G.Node
	// CacheK and CacheV are the per-layer cache inputs [Batch, KVHeads, MaxLen, HeadDim].
	CacheK, CacheV []*G.Node
	// MemK and MemV are the per-layer cross-attention keys and values
	// [Batch, KVHeads, SrcLen, HeadDim] (translation), computed once by an Encoder graph;
	// SrcLens [Batch] ints are the source lengths.
	MemK, MemV []*G.Node
	SrcLens    *G.Node

	// Outputs: the new key and value rows of each layer [Batch, KVHeads·HeadDim] and the
	// logits [Batch, Vocab].
	NewK, NewV []*G.Node
	Logits     *G.Node
}

// BuildDecodeStep builds the decode-step graph over params for batch sequences, a cache of
// maxLen positions (at most cfg.MaxLen) and, for translation, a memory of srcLen positions.
func BuildDecodeStep(params *layers.Params, cfg Config, batch, maxLen, srcLen int) (*DecodeStep, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if batch < 1 || maxLen < 1 || maxLen > cfg.MaxLen {
		return nil, fmt.Errorf("decode step: batch %d and cache length %d must be positive (cache at most max_len %d)", batch, maxLen, cfg.MaxLen)
	}
	if (cfg.Task == TaskTranslate) != (srcLen > 0) || srcLen > cfg.MaxLen {
		return nil, fmt.Errorf("decode step: source length %d: a source of 1..%d positions is needed exactly for translation", srcLen, cfg.MaxLen)
	}
	lg := layers.NewGraph(params)
	s := &DecodeStep{Graph: lg, Cfg: cfg, Batch: batch, MaxLen: maxLen, SrcLen: srcLen}
	s.Tokens, s.Positions, s.Lengths = lg.Ints("tokens", batch), lg.Ints("positions", batch), lg.Ints("lengths", batch)
	m := Model{cfg}
	kv, dk := cfg.KVHeads, cfg.HeadDim
	if cfg.Task == TaskTranslate {
		s.SrcLens = lg.Ints("src_lens", batch)
	}
	x, err := m.Embed(lg, s.Tokens, s.Positions, false)
	if err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Layers; i++ {
		ck := lg.Input(fmt.Sprintf("cache_k.%d", i), batch, kv, maxLen, dk)
		cv := lg.Input(fmt.Sprintf("cache_v.%d", i), batch, kv, maxLen, dk)
		s.CacheK, s.CacheV = append(s.CacheK, ck), append(s.CacheV, cv)
		var mk, mv *G.Node
		if cfg.Task == TaskTranslate {
			mk = lg.Input(fmt.Sprintf("mem_k.%d", i), batch, kv, srcLen, dk)
			mv = lg.Input(fmt.Sprintf("mem_v.%d", i), batch, kv, srcLen, dk)
			s.MemK, s.MemV = append(s.MemK, mk), append(s.MemV, mv)
		}
		p := m.LayerPrefix(i)
		self := func(h *G.Node) (*G.Node, error) {
			a := m.Attention(p+"self_attn", true)
			nk, err := a.KVProjection(lg, h, "k", s.Positions)
			if err != nil {
				return nil, err
			}
			nv, err := a.KVProjection(lg, h, "v", nil)
			if err != nil {
				return nil, err
			}
			s.NewK, s.NewV = append(s.NewK, nk), append(s.NewV, nv)
			return s.attend(a, h, ck, cv, nk, nv, s.Lengths)
		}
		cross := func(h *G.Node) (*G.Node, error) {
			return s.attend(m.Attention(p+"cross_attn", false), h, mk, mv, nil, nil, s.SrcLens)
		}
		if x, err = m.DecoderBlockWith(lg, i, x, self, cross); err != nil {
			return nil, err
		}
	}
	if x, err = m.FinalNorm(lg, x); err != nil {
		return nil, err
	}
	if s.Logits, err = m.Head(lg, x); err != nil {
		return nil, err
	}
	return s, nil
}

// attend is one attention of the step: queries of h [Batch, Dim] over k, v (and the new
// rows), then the output projection.
func (s *DecodeStep) attend(a layers.Attention, h, k, v, newK, newV, lengths *G.Node) (*G.Node, error) {
	q, err := a.Queries(s.Graph, h, layers.Shape{Batch: s.Batch, QueryLen: 1, KeyLen: 1, QueryPos: s.Positions})
	if err != nil {
		return nil, err
	}
	// [Batch·KVHeads, group, dk] is [Batch, Heads·dk] in grouped head order.
	if q, err = G.Reshape(q, tensor.Shape{s.Batch, a.Heads * a.HeadDim}); err != nil {
		return nil, err
	}
	op := ops.DecodeAttention{Heads: a.Heads, KVHeads: a.KVHeads, HeadDim: a.HeadDim,
		Scale: a.Scale(), Window: a.Window, HasNew: newK != nil}
	o, err := ops.NewDecodeAttention(op, q, k, v, newK, newV, lengths)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name, err)
	}
	return a.Output(s.Graph, o)
}

// Encoder is the encoder graph of a translation model for one padded source batch; it
// outputs each decoder layer's cross-attention keys and values, which the decode steps of
// that batch reuse.
type Encoder struct {
	*layers.Graph
	Cfg           Config
	Batch, SrcLen int
	Src, SrcLens  *G.Node   // inputs: source ids [Batch·SrcLen] (padded), lengths [Batch]
	MemK, MemV    []*G.Node // outputs per decoder layer: [Batch, KVHeads, SrcLen, HeadDim]
}

// BuildEncoder builds the encoder graph of a translation model.
func BuildEncoder(params *layers.Params, cfg Config, batch, srcLen int) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Task != TaskTranslate {
		return nil, fmt.Errorf("encoder: the model is a %q model, not a translation model", cfg.Task)
	}
	if batch < 1 || srcLen < 1 || srcLen > cfg.MaxLen {
		return nil, fmt.Errorf("encoder: batch %d and source length %d must be positive (source at most max_len %d)", batch, srcLen, cfg.MaxLen)
	}
	lg := layers.NewGraph(params)
	g := &Graph{Graph: lg, Cfg: cfg, Shape: Shape{Batch: batch, SrcLen: srcLen, TgtLen: 1}}
	memory, err := g.encode()
	if err != nil {
		return nil, err
	}
	e := &Encoder{Graph: lg, Cfg: cfg, Batch: batch, SrcLen: srcLen, Src: g.Src, SrcLens: g.SrcLens}
	m := Model{cfg}
	memShape := tensor.Shape{batch, cfg.KVHeads, srcLen, cfg.HeadDim}
	for i := 0; i < cfg.Layers; i++ {
		a := m.Attention(m.LayerPrefix(i)+"cross_attn", false)
		// the training graph's cross-attention keys and values, [B·kv, S, dk] = [B, kv, S, dk]
		k, v, err := a.KeysValues(lg, memory, layers.Shape{Batch: batch, KeyLen: srcLen})
		if err != nil {
			return nil, err
		}
		if k, err = G.Reshape(k, memShape); err != nil {
			return nil, err
		}
		if v, err = G.Reshape(v, memShape); err != nil {
			return nil, err
		}
		e.MemK, e.MemV = append(e.MemK, k), append(e.MemV, v)
	}
	return e, nil
}

// Feed sets the padded source [Batch·SrcLen] and the source lengths [Batch].
func (e *Encoder) Feed(src, srcLens []int) error {
	if err := checkSource("encoder feed", src, srcLens, e.Batch, e.SrcLen); err != nil {
		return err
	}
	return letSource(e.Src, e.SrcLens, src, srcLens)
}
