package models

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers"
	"mqa/layers/ops"
)

// PadID is the token id that pads batches; targets equal to it add no loss.
const PadID = 0

// Shape is the fixed batch shape a graph is built for. SrcLen is 0 for an LM.
type Shape struct {
	Batch, SrcLen, TgtLen int
}

// Options control a graph build.
type Options struct {
	Train          bool    // dropout on
	LabelSmoothing float64 // ε of the training loss
	DropoutSeed    uint64
	DropoutStep    *uint64 // advanced by the trainer once per step
}

// Graph is a model's forward graph (and, once Grad has been called on it, backward graph)
// for one batch shape. Inputs are fed with FeedLM or FeedTranslation.
type Graph struct {
	*layers.Graph
	Cfg   Config
	Shape Shape

	// Decoder side, [Batch·TgtLen] ints: input tokens, their positions, next-token targets.
	Tokens, Positions, Targets *G.Node
	// Encoder side of a translation model: source tokens and positions [Batch·SrcLen] and
	// source lengths [Batch].
	Src, SrcPositions, SrcLens *G.Node

	Logits *G.Node // [Batch·TgtLen, Vocab]
	Loss   *G.Node // scalar: mean cross-entropy over non-pad targets
}

// Build constructs the model's graph for one batch shape over params (creating any
// parameter that does not exist yet, deterministically from the params' seed).
func Build(params *layers.Params, cfg Config, shape Shape, opt Options) (*Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if shape.Batch < 1 || shape.TgtLen < 1 || shape.TgtLen > cfg.MaxLen || shape.SrcLen > cfg.MaxLen {
		return nil, fmt.Errorf("batch shape %+v does not fit the model (max_len %d)", shape, cfg.MaxLen)
	}
	if (cfg.Task == TaskTranslate) != (shape.SrcLen > 0) {
		return nil, fmt.Errorf("batch shape %+v: a source length is needed exactly for translation", shape)
	}
	lg := layers.NewGraph(params)
	lg.Train, lg.DropoutSeed, lg.DropoutStep = opt.Train, opt.DropoutSeed, opt.DropoutStep
	g := &Graph{Graph: lg, Cfg: cfg, Shape: shape}
	n := shape.Batch * shape.TgtLen
	g.Tokens, g.Positions, g.Targets = lg.Ints("tokens", n), lg.Ints("positions", n), lg.Ints("targets", n)
	if err := G.Let(g.Positions, intTensor(rowPositions(shape.Batch, shape.TgtLen))); err != nil {
		return nil, err
	}
	var memory *G.Node
	var err error
	if cfg.Task == TaskTranslate {
		if memory, err = g.encode(); err != nil {
			return nil, err
		}
	}
	h, err := g.decode(memory)
	if err != nil {
		return nil, err
	}
	if g.Logits, err = (Model{cfg}).Head(lg, h); err != nil {
		return nil, err
	}
	g.Loss, err = ops.CrossEntropy{Smoothing: opt.LabelSmoothing, Ignore: PadID}.Apply(g.Logits, g.Targets)
	return g, err
}

// InitParams creates a model's parameters from a seed (float32) by building its smallest graph.
func InitParams(cfg Config, seed uint64) (*layers.Params, error) {
	p := layers.NewParams(tensor.Float32, seed)
	shape := Shape{Batch: 1, TgtLen: 1}
	if cfg.Task == TaskTranslate {
		shape.SrcLen = 1
	}
	if _, err := Build(p, cfg, shape, Options{}); err != nil {
		return nil, err
	}
	return p, nil
}

// encode adds the source inputs (Src, SrcPositions, SrcLens) and the encoder; it returns
// the encoder output.
func (g *Graph) encode() (*G.Node, error) {
	ns := g.Shape.Batch * g.Shape.SrcLen
	g.Src, g.SrcPositions, g.SrcLens = g.Ints("src", ns), g.Ints("src_positions", ns), g.Ints("src_lens", g.Shape.Batch)
	if err := G.Let(g.SrcPositions, intTensor(rowPositions(g.Shape.Batch, g.Shape.SrcLen))); err != nil {
		return nil, err
	}
	m := Model{g.Cfg}
	s := layers.Shape{Batch: g.Shape.Batch, QueryLen: g.Shape.SrcLen, KeyLen: g.Shape.SrcLen,
		KeyLens: g.SrcLens, QueryPos: g.SrcPositions, KeyPos: g.SrcPositions}
	x, err := m.Embed(g.Graph, g.Src, g.SrcPositions, true)
	if err != nil {
		return nil, err
	}
	for i := 0; i < g.Cfg.EncoderLayers; i++ {
		if x, err = m.EncoderBlock(g.Graph, i, x, s); err != nil {
			return nil, err
		}
	}
	return m.norm("encoder.norm").Forward(g.Graph, x)
}

func (g *Graph) decode(memory *G.Node) (*G.Node, error) {
	m := Model{g.Cfg}
	self := layers.Shape{Batch: g.Shape.Batch, QueryLen: g.Shape.TgtLen, KeyLen: g.Shape.TgtLen,
		QueryPos: g.Positions, KeyPos: g.Positions}
	cross := layers.Shape{Batch: g.Shape.Batch, QueryLen: g.Shape.TgtLen, KeyLen: g.Shape.SrcLen, KeyLens: g.SrcLens}
	x, err := m.Embed(g.Graph, g.Tokens, g.Positions, false)
	if err != nil {
		return nil, err
	}
	for i := 0; i < g.Cfg.Layers; i++ {
		if x, err = m.DecoderBlock(g.Graph, i, x, memory, self, cross); err != nil {
			return nil, err
		}
	}
	return m.FinalNorm(g.Graph, x)
}

// FeedLM sets the inputs of an LM graph: tokens and targets, row-major [Batch·TgtLen].
func (g *Graph) FeedLM(tokens, targets []int) error {
	n := g.Shape.Batch * g.Shape.TgtLen
	if len(tokens) != n || len(targets) != n {
		return fmt.Errorf("feed: %d tokens and %d targets for a %d×%d batch", len(tokens), len(targets), g.Shape.Batch, g.Shape.TgtLen)
	}
	if err := G.Let(g.Tokens, intTensor(tokens)); err != nil {
		return err
	}
	return G.Let(g.Targets, intTensor(targets))
}

// FeedTranslation sets the inputs of a translation graph: padded source [Batch·SrcLen],
// source lengths [Batch], decoder inputs and targets [Batch·TgtLen].
func (g *Graph) FeedTranslation(src, srcLens, tgtIn, tgtOut []int) error {
	if g.Src == nil {
		return fmt.Errorf("feed: not a translation graph")
	}
	if err := checkSource("feed", src, srcLens, g.Shape.Batch, g.Shape.SrcLen); err != nil {
		return err
	}
	if err := g.FeedLM(tgtIn, tgtOut); err != nil {
		return err
	}
	return letSource(g.Src, g.SrcLens, src, srcLens)
}

// checkSource checks a padded source batch [batch·srcLen] and its lengths [batch], each in
// 1..srcLen; what starts the error message.
func checkSource(what string, src, srcLens []int, batch, srcLen int) error {
	if len(src) != batch*srcLen || len(srcLens) != batch {
		return fmt.Errorf("%s: %d source tokens and %d lengths for a %d×%d batch", what, len(src), len(srcLens), batch, srcLen)
	}
	for i, l := range srcLens {
		if l < 1 || l > srcLen {
			return fmt.Errorf("%s: source %d has length %d, outside 1..%d", what, i, l, srcLen)
		}
	}
	return nil
}

// letSource sets the source and source-length inputs.
func letSource(srcNode, lensNode *G.Node, src, srcLens []int) error {
	if err := G.Let(srcNode, intTensor(src)); err != nil {
		return err
	}
	return G.Let(lensNode, intTensor(srcLens))
}

// rowPositions returns i mod n for each of batch·n rows.
func rowPositions(batch, n int) []int {
	p := make([]int, batch*n)
	for i := range p {
		p[i] = i % n
	}
	return p
}

func intTensor(xs []int) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(xs)), tensor.WithBacking(append([]int(nil), xs...)))
}
