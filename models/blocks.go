package models

import (
	"fmt"
	"strings"

	G "gorgonia.org/gorgonia"

	"gorgonia.org/tensor"

	"mqa/layers"
)

// Model names the layers of a configuration; graph builders (training, evaluation and
// decode steps) all go through it, so they share parameter names and structure.
type Model struct{ Cfg Config }

// prefix is where the decoder's layers live: "" for an LM, "decoder." for translation.
func (m Model) prefix() string {
	if m.Cfg.Task == TaskTranslate {
		return "decoder."
	}
	return ""
}

func (m Model) norm(name string) layers.Norm {
	return layers.Norm{Name: name, Dim: m.Cfg.Dim, RMS: m.Cfg.Norm == "rms"}
}

// Attention returns the attention layer called name; causal self-attention gets the local window.
func (m Model) Attention(name string, causal bool) layers.Attention {
	a := layers.Attention{Name: name, Dim: m.Cfg.Dim, Heads: m.Cfg.Heads, KVHeads: m.Cfg.KVHeads,
		HeadDim: m.Cfg.HeadDim, Bias: m.Cfg.Bias, Causal: causal}
	if causal {
		a.Window = m.Cfg.Window
	}
	if m.Cfg.Positions == layers.PosRoPE && !strings.HasSuffix(name, "cross_attn") {
		a.RoPE = true
	}
	return a
}

func (m Model) ffn(name string) layers.FeedForward {
	return layers.FeedForward{Name: name, Dim: m.Cfg.Dim, Hidden: m.Cfg.FFDim, Activation: m.Cfg.Activation, Bias: m.Cfg.Bias}
}

// embedding returns the target embedding, or the source one when source is set and the
// vocabularies are separate.
func (m Model) embedding(source bool) layers.Embedding {
	if source && m.Cfg.SrcVocab > 0 {
		return layers.Embedding{Name: "src_embed", Vocab: m.Cfg.SrcVocab, Dim: m.Cfg.Dim}
	}
	return layers.Embedding{Name: "embed", Vocab: m.Cfg.Vocab, Dim: m.Cfg.Dim}
}

// Embed looks tokens up and adds positions (and dropout): [N, Dim].
func (m Model) Embed(b *layers.Graph, tokens, positions *G.Node, source bool) (*G.Node, error) {
	x, err := m.embedding(source).Lookup(b, tokens)
	if err != nil {
		return nil, err
	}
	name := "pos"
	if m.Cfg.Task == TaskTranslate {
		name = map[bool]string{true: "encoder.pos", false: "decoder.pos"}[source]
	}
	if x, err = (layers.Positions{Name: name, Kind: m.Cfg.Positions, MaxLen: m.Cfg.MaxLen, Dim: m.Cfg.Dim}).Forward(b, x, positions); err != nil {
		return nil, err
	}
	return layers.Dropout(b, x, m.Cfg.Dropout)
}

// residual returns x + dropout(f(norm(x))), the pre-norm residual block.
func (m Model) residual(b *layers.Graph, x *G.Node, normName string, f func(*G.Node) (*G.Node, error)) (*G.Node, error) {
	h, err := m.norm(normName).Forward(b, x)
	if err != nil {
		return nil, err
	}
	if h, err = f(h); err != nil {
		return nil, err
	}
	if h, err = layers.Dropout(b, h, m.Cfg.Dropout); err != nil {
		return nil, err
	}
	return G.Add(x, h)
}

// EncoderBlock is one encoder layer: self-attention over the padded source, then feed-forward.
func (m Model) EncoderBlock(b *layers.Graph, i int, x *G.Node, s layers.Shape) (*G.Node, error) {
	p := fmt.Sprintf("encoder.layers.%d.", i)
	x, err := m.residual(b, x, p+"norm1", func(h *G.Node) (*G.Node, error) {
		return m.Attention(p+"self_attn", false).Forward(b, h, h, s)
	})
	if err != nil {
		return nil, err
	}
	return m.residual(b, x, p+"norm2", func(h *G.Node) (*G.Node, error) { return m.ffn(p+"ffn").Forward(b, h) })
}

// DecoderBlock is one decoder layer: causal self-attention, cross-attention over memory
// (translation only), then feed-forward.
func (m Model) DecoderBlock(b *layers.Graph, i int, x, memory *G.Node, self, cross layers.Shape) (*G.Node, error) {
	return m.DecoderBlockWith(b, i, x, func(h *G.Node) (*G.Node, error) {
		return m.Attention(m.LayerPrefix(i)+"self_attn", true).Forward(b, h, h, self)
	}, func(h *G.Node) (*G.Node, error) {
		return m.Attention(m.LayerPrefix(i)+"cross_attn", false).Forward(b, h, memory, cross)
	})
}

// LayerPrefix is the parameter-name prefix of decoder layer i.
func (m Model) LayerPrefix(i int) string { return fmt.Sprintf("%slayers.%d.", m.prefix(), i) }

// DecoderBlockWith is DecoderBlock with the two attentions supplied by the caller (the
// decode step attends over cached keys and values instead).
func (m Model) DecoderBlockWith(b *layers.Graph, i int, x *G.Node, self, cross func(*G.Node) (*G.Node, error)) (*G.Node, error) {
	p := m.LayerPrefix(i)
	x, err := m.residual(b, x, p+"norm1", self)
	if err != nil {
		return nil, err
	}
	if m.Cfg.Task == TaskTranslate {
		if x, err = m.residual(b, x, p+"norm_cross", cross); err != nil {
			return nil, err
		}
	}
	return m.residual(b, x, p+"norm2", func(h *G.Node) (*G.Node, error) { return m.ffn(p+"ffn").Forward(b, h) })
}

// FinalNorm normalises the decoder output.
func (m Model) FinalNorm(b *layers.Graph, x *G.Node) (*G.Node, error) {
	return m.norm(m.prefix()+"norm").Forward(b, x)
}

// Head projects [N, Dim] to logits [N, Vocab]: through the transposed target embedding when
// tied, else through its own matrix. The tied product multiplies by the transposed table
// inside one (batched, transposed) GEMM instead of materialising the [Dim, Vocab] transpose.
func (m Model) Head(b *layers.Graph, h *G.Node) (*G.Node, error) {
	if !m.Cfg.TieEmbeddings {
		return layers.Linear{Name: "head", In: m.Cfg.Dim, Out: m.Cfg.Vocab}.Forward(b, h)
	}
	table, err := m.embedding(false).Table(b)
	if err != nil {
		return nil, err
	}
	n := h.Shape()[0]
	h3, err := G.Reshape(h, tensor.Shape{1, n, m.Cfg.Dim})
	if err != nil {
		return nil, err
	}
	t3, err := G.Reshape(table, tensor.Shape{1, m.Cfg.Vocab, m.Cfg.Dim})
	if err != nil {
		return nil, err
	}
	y, err := G.BatchedMatMul(h3, t3, false, true)
	if err != nil {
		return nil, fmt.Errorf("output projection: %w", err)
	}
	return G.Reshape(y, tensor.Shape{n, m.Cfg.Vocab})
}
