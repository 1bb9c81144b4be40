package infer

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers"
	"mqa/layers/program"
	"mqa/models"
)

// Stepper advances a batch of sequences by one token each per call. Search algorithms
// (greedy, sampling, beam search) drive a Stepper and do not know whether it caches keys
// and values, recomputes everything, or runs on a GPU.
type Stepper interface {
	// Batch is the number of sequences (rows).
	Batch() int
	// Vocab is the number of logits per row.
	Vocab() int
	// Capacity is the most tokens one sequence can take in.
	Capacity() int
	// Step feeds tokens[i] to sequence i at its next position and returns the logits of
	// each sequence's following token, [Batch·Vocab] row-major. A negative token marks a
	// finished sequence: it takes nothing in and its logits row is meaningless.
	Step(tokens []int) ([]float32, error)
	// Reorder makes sequence i a copy of sequence parents[i], for every i (beam search).
	Reorder(parents []int) error
}

// Backend makes Steppers for one model. The CPU backend is built in (NewCPU); the GPU
// backend implements the same interface.
type Backend interface {
	// Config is the model's configuration.
	Config() models.Config
	// LM returns a Stepper over batch sequences of a language model, each with room for
	// capacity tokens (at most the model's max_len).
	LM(batch, capacity int) (Stepper, error)
	// Translation encodes the sources (unpadded token ids, 1..max_len each) and returns a
	// Stepper whose row r decodes sources[r/beams], with room for capacity target tokens.
	Translation(sources [][]int, beams, capacity int) (Stepper, error)
}

// CPU runs decoding as programs (package program: Gorgonia's ops in topological order, each
// node's memory kept from one step to the next). With NoCache it recomputes the whole
// sequence (and the encoder) at every step through the training graph (models.Build); this
// is the reference and the -nocache path. Otherwise it runs the decode-step graph
// (models.BuildDecodeStep) over a K/V cache. Compiled graphs are kept per shape (the most
// recently used, each kind within a third of program.DefaultBudget), so a CPU must not be used
// from several goroutines at once.
type CPU struct {
	Cfg     models.Config
	Params  *layers.Params
	NoCache bool

	steps    *program.Cache[[3]int, *compiledStep]
	encoders *program.Cache[[2]int, *compiledEncoder]
	full     *program.Cache[[3]int, *compiledFull]
	// compile makes a graph's runner: program.New, or a TapeMachine in the tests that
	// compare the two.
	compile func(*G.ExprGraph) (runner, error)
}

// runner runs a graph again and again; after a run it gives every node's value, which the
// next run may overwrite. Bytes is the memory it keeps between runs.
type runner interface {
	Run() error
	Value(n *G.Node) (G.Value, error)
	Bytes() int64
}

func newProgram(g *G.ExprGraph) (runner, error) { return program.New(g) }

// NewCPU returns the CPU backend of a model.
func NewCPU(cfg models.Config, params *layers.Params, noCache bool) (*CPU, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	const budget = program.DefaultBudget / 3
	return &CPU{Cfg: cfg, Params: params, NoCache: noCache, compile: newProgram,
		steps:    program.NewCache[[3]int](budget, func(s *compiledStep) int64 { return s.exec.Bytes() }),
		encoders: program.NewCache[[2]int](budget, func(e *compiledEncoder) int64 { return e.exec.Bytes() }),
		full:     program.NewCache[[3]int](budget, func(f *compiledFull) int64 { return f.exec.Bytes() })}, nil
}

// Config is the model's configuration.
func (c *CPU) Config() models.Config { return c.Cfg }

type compiledStep struct {
	g    *models.DecodeStep
	exec runner
}

type compiledEncoder struct {
	g    *models.Encoder
	exec runner
}

type compiledFull struct {
	g    *models.Graph
	exec runner
}

// run feeds the padded target inputs and targets of every row (and, for translation, the
// padded sources src with their lengths; nil for a language model) and runs the graph.
func (f *compiledFull) run(src, srcLens, in, out []int) error {
	var err error
	if src != nil {
		err = f.g.FeedTranslation(src, srcLens, in, out)
	} else {
		err = f.g.FeedLM(in, out)
	}
	if err != nil {
		return err
	}
	return f.exec.Run()
}

func (c *CPU) step(batch, capacity, srcLen int) (*compiledStep, error) {
	return c.steps.GetOrBuild([3]int{batch, capacity, srcLen}, func() (*compiledStep, error) {
		g, err := models.BuildDecodeStep(c.Params, c.Cfg, batch, capacity, srcLen)
		if err != nil {
			return nil, err
		}
		r, err := c.compile(g.G)
		return &compiledStep{g: g, exec: r}, err
	})
}

func (c *CPU) encoder(batch, srcLen int) (*compiledEncoder, error) {
	return c.encoders.GetOrBuild([2]int{batch, srcLen}, func() (*compiledEncoder, error) {
		g, err := models.BuildEncoder(c.Params, c.Cfg, batch, srcLen)
		if err != nil {
			return nil, err
		}
		r, err := c.compile(g.G)
		return &compiledEncoder{g: g, exec: r}, err
	})
}

func (c *CPU) fullGraph(batch, srcLen, tgtLen int) (*compiledFull, error) {
	return c.full.GetOrBuild([3]int{batch, srcLen, tgtLen}, func() (*compiledFull, error) {
		g, err := models.Build(c.Params, c.Cfg, models.Shape{Batch: batch, SrcLen: srcLen, TgtLen: tgtLen}, models.Options{})
		if err != nil {
			return nil, err
		}
		r, err := c.compile(g.G)
		return &compiledFull{g: g, exec: r}, err
	})
}

func (c *CPU) checkCapacity(batch, capacity int) error {
	if batch < 1 {
		return fmt.Errorf("decode: batch %d must be positive", batch)
	}
	if capacity < 1 || capacity > c.Cfg.MaxLen {
		return fmt.Errorf("decode: room for %d tokens per sequence; the model takes 1..%d (max_len)", capacity, c.Cfg.MaxLen)
	}
	return nil
}

// LM returns a Stepper over batch sequences of a language model.
func (c *CPU) LM(batch, capacity int) (Stepper, error) {
	if c.Cfg.Task != models.TaskLM {
		return nil, fmt.Errorf("decode: the model is a %q model, not a language model", c.Cfg.Task)
	}
	if err := c.checkCapacity(batch, capacity); err != nil {
		return nil, err
	}
	if c.NoCache {
		return &fullStepper{cpu: c, hist: make([][]int, batch), capacity: capacity}, nil
	}
	s, err := c.step(batch, capacity, 0)
	if err != nil {
		return nil, err
	}
	return c.newCached(s, nil, nil, nil), nil
}

// padSources pads sources to a common length rounded up to a multiple of 8 (fewer graph
// shapes; padding is masked) and checks them.
func padSources(sources [][]int, beams, maxLen, vocab int) (src, lens []int, srcLen int, err error) {
	if len(sources) == 0 || beams < 1 {
		return nil, nil, 0, fmt.Errorf("decode: %d sources and beam size %d (both must be positive)", len(sources), beams)
	}
	for i, s := range sources {
		if len(s) < 1 || len(s) > maxLen {
			return nil, nil, 0, fmt.Errorf("decode: source %d has %d tokens; the model takes 1..%d (max_len)", i, len(s), maxLen)
		}
		for _, t := range s {
			if t < 0 || t >= vocab {
				return nil, nil, 0, fmt.Errorf("decode: source %d has token %d outside the vocabulary of %d", i, t, vocab)
			}
		}
		srcLen = max(srcLen, len(s))
	}
	srcLen = min((srcLen+7)/8*8, maxLen)
	rows := len(sources) * beams
	src, lens = make([]int, rows*srcLen), make([]int, rows)
	for r := 0; r < rows; r++ {
		s := sources[r/beams]
		copy(src[r*srcLen:], s)
		lens[r] = len(s)
	}
	return src, lens, srcLen, nil
}

func (c *CPU) srcVocab() int {
	if c.Cfg.SrcVocab > 0 {
		return c.Cfg.SrcVocab
	}
	return c.Cfg.Vocab
}

// Translation encodes the sources once and returns a Stepper over len(sources)·beams rows.
func (c *CPU) Translation(sources [][]int, beams, capacity int) (Stepper, error) {
	if c.Cfg.Task != models.TaskTranslate {
		return nil, fmt.Errorf("decode: the model is a %q model, not a translation model", c.Cfg.Task)
	}
	if err := c.checkCapacity(len(sources)*max(beams, 1), capacity); err != nil {
		return nil, err
	}
	if c.NoCache {
		src, lens, srcLen, err := padSources(sources, beams, c.Cfg.MaxLen, c.srcVocab())
		if err != nil {
			return nil, err
		}
		return &fullStepper{cpu: c, hist: make([][]int, len(lens)), capacity: capacity, src: src, srcLens: lens, srcLen: srcLen}, nil
	}
	memK, memV, lens, srcLen, err := c.Encode(sources, beams)
	if err != nil {
		return nil, err
	}
	s, err := c.step(len(lens), capacity, srcLen)
	if err != nil {
		return nil, err
	}
	return c.newCached(s, memK, memV, lens), nil
}

// Encode runs the encoder once over the sources and returns each decoder layer's
// cross-attention keys and values [rows, KVHeads, srcLen, HeadDim], every source repeated
// for its beams (rows = len(sources)·beams), with the row source lengths.
func (c *CPU) Encode(sources [][]int, beams int) (memK, memV []*tensor.Dense, lens []int, srcLen int, err error) {
	src, srcLens, srcLen, err := padSources(sources, 1, c.Cfg.MaxLen, c.srcVocab())
	if err != nil {
		return nil, nil, nil, 0, err
	}
	if beams < 1 {
		return nil, nil, nil, 0, fmt.Errorf("decode: beam size %d must be positive", beams)
	}
	e, err := c.encoder(len(sources), srcLen)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	if err = e.g.Feed(src, srcLens); err != nil {
		return nil, nil, nil, 0, err
	}
	if err = e.exec.Run(); err != nil {
		return nil, nil, nil, 0, fmt.Errorf("encoder: %w", err)
	}
	repeat := func(n *G.Node) (*tensor.Dense, error) {
		v, err := denseValue(e.exec, n)
		if err != nil {
			return nil, fmt.Errorf("encoder: %w", err)
		}
		if beams == 1 {
			return v.Clone().(*tensor.Dense), nil
		}
		out, err := tensor.Repeat(v, 0, beams) // row r is source r/beams
		if err != nil {
			return nil, fmt.Errorf("encoder: repeating %s: %w", n.Name(), err)
		}
		return out.(*tensor.Dense), nil
	}
	for i := range e.g.MemK {
		k, err := repeat(e.g.MemK[i])
		if err != nil {
			return nil, nil, nil, 0, err
		}
		v, err := repeat(e.g.MemV[i])
		if err != nil {
			return nil, nil, nil, 0, err
		}
		memK, memV = append(memK, k), append(memV, v)
	}
	lens = make([]int, len(sources)*beams)
	for r := range lens {
		lens[r] = srcLens[r/beams]
	}
	return memK, memV, lens, srcLen, nil
}

// cachedStepper runs the decode-step graph over a Cache.
type cachedStepper struct {
	cfg   models.Config
	s     *compiledStep
	cache *Cache
	// lets holds a value for every input of the graph, bound again at each step (the graph
	// may be shared with other steppers of its shape): tensors over toks, pos and lens,
	// which each step refills, the cache's tensors and the cross-attention memory.
	lets            []binding
	toks, pos, lens []int
	active          []bool
}

func (c *CPU) newCached(s *compiledStep, memK, memV []*tensor.Dense, srcLens []int) *cachedStepper {
	g, b := s.g, s.g.Batch
	st := &cachedStepper{cfg: c.Cfg, s: s,
		cache: NewCache(c.Params.Dtype(), c.Cfg.Layers, b, c.Cfg.KVHeads, g.MaxLen, c.Cfg.HeadDim),
		toks:  make([]int, b), pos: make([]int, b), lens: make([]int, b), active: make([]bool, b)}
	st.lets = []binding{{g.Tokens, intTensor(st.toks)}, {g.Positions, intTensor(st.pos)}, {g.Lengths, intTensor(st.lens)}}
	for i := range g.CacheK {
		st.lets = append(st.lets, binding{g.CacheK[i], st.cache.K[i]}, binding{g.CacheV[i], st.cache.V[i]})
		if g.MemK != nil {
			st.lets = append(st.lets, binding{g.MemK[i], memK[i]}, binding{g.MemV[i], memV[i]})
		}
	}
	if g.SrcLens != nil {
		st.lets = append(st.lets, binding{g.SrcLens, intTensor(srcLens)})
	}
	return st
}

func (s *cachedStepper) Batch() int    { return s.cache.Batch }
func (s *cachedStepper) Vocab() int    { return s.cfg.Vocab }
func (s *cachedStepper) Capacity() int { return s.cache.MaxLen }

func (s *cachedStepper) Reorder(parents []int) error { return s.cache.Reorder(parents) }

func checkTokens(tokens []int, batch, vocab int, lens func(int) int, capacity int) error {
	if len(tokens) != batch {
		return fmt.Errorf("decode: %d tokens for %d sequences", len(tokens), batch)
	}
	for b, t := range tokens {
		if t < 0 {
			continue
		}
		if t >= vocab {
			return fmt.Errorf("decode: token %d of sequence %d is outside the vocabulary of %d", t, b, vocab)
		}
		if lens(b) >= capacity {
			return fmt.Errorf("decode: sequence %d already holds %d tokens, the most it can take", b, capacity)
		}
	}
	return nil
}

func (s *cachedStepper) Step(tokens []int) ([]float32, error) {
	c := s.cache
	if err := checkTokens(tokens, c.Batch, s.cfg.Vocab, func(b int) int { return c.Len[b] }, c.MaxLen); err != nil {
		return nil, err
	}
	for b, t := range tokens {
		s.active[b] = t >= 0
		if t < 0 {
			s.toks[b], s.pos[b], s.lens[b] = models.PadID, 0, -1
			continue
		}
		s.toks[b], s.pos[b], s.lens[b] = t, c.Len[b], c.Len[b]
	}
	g := s.s.g
	for _, l := range s.lets {
		if err := G.Let(l.n, l.v); err != nil {
			return nil, err
		}
	}
	if err := s.s.exec.Run(); err != nil {
		return nil, fmt.Errorf("decode step: %w", err)
	}
	for i := range g.NewK {
		nk, err := denseValue(s.s.exec, g.NewK[i])
		if err != nil {
			return nil, fmt.Errorf("decode step: layer %d: %w", i, err)
		}
		nv, err := denseValue(s.s.exec, g.NewV[i])
		if err != nil {
			return nil, fmt.Errorf("decode step: layer %d: %w", i, err)
		}
		if err := c.Append(i, nk, nv, s.active); err != nil {
			return nil, err
		}
	}
	c.Advance(s.active)
	return logitsOf(s.s.exec, g.Logits)
}

// binding is a value for an input node.
type binding struct {
	n *G.Node
	v G.Value
}

// denseValue is a node's value after the runner's last run, which must be a dense tensor.
func denseValue(r runner, n *G.Node) (*tensor.Dense, error) {
	v, err := r.Value(n)
	if err != nil {
		return nil, err
	}
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%s is %T, not a dense tensor", n.Name(), v)
	}
	return d, nil
}

// logitsOf copies a logits node's value after the runner's last run as float32.
func logitsOf(r runner, n *G.Node) ([]float32, error) {
	v, err := denseValue(r, n)
	if err != nil {
		return nil, fmt.Errorf("decode: logits: %w", err)
	}
	switch d := v.Data().(type) {
	case []float32:
		return append([]float32(nil), d...), nil
	case []float64:
		out := make([]float32, len(d))
		for i, x := range d {
			out[i] = float32(x)
		}
		return out, nil
	}
	return nil, fmt.Errorf("decode: logits of type %v", v.Dtype())
}

// intTensor is a tensor over xs (not a copy).
func intTensor(xs []int) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(xs)), tensor.WithBacking(xs))
}

// fullStepper recomputes every sequence (and the source's encoding) at each step with the
// training graph: the reference for the cached path and the -nocache mode.
type fullStepper struct {
	cpu      *CPU
	hist     [][]int
	capacity int
	src      []int // padded sources per row (translation)
	srcLens  []int
	srcLen   int
}

func (f *fullStepper) Batch() int    { return len(f.hist) }
func (f *fullStepper) Vocab() int    { return f.cpu.Cfg.Vocab }
func (f *fullStepper) Capacity() int { return f.capacity }

func (f *fullStepper) Reorder(parents []int) error {
	if len(parents) != len(f.hist) {
		return fmt.Errorf("decode: %d parents for %d sequences", len(parents), len(f.hist))
	}
	next := make([][]int, len(parents))
	for b, p := range parents {
		if p < 0 || p >= len(f.hist) {
			return fmt.Errorf("decode: parent %d of sequence %d is outside 0..%d", p, b, len(f.hist)-1)
		}
		next[b] = append([]int(nil), f.hist[p]...)
	}
	f.hist = next
	return nil
}

func (f *fullStepper) Step(tokens []int) ([]float32, error) {
	batch, vocab := len(f.hist), f.cpu.Cfg.Vocab
	if err := checkTokens(tokens, batch, vocab, func(b int) int { return len(f.hist[b]) }, f.capacity); err != nil {
		return nil, err
	}
	t := 1
	for b, tok := range tokens {
		if tok >= 0 {
			f.hist[b] = append(f.hist[b], tok)
		}
		t = max(t, len(f.hist[b]))
	}
	g, err := f.cpu.fullGraph(batch, f.srcLen, t)
	if err != nil {
		return nil, err
	}
	in, out := make([]int, batch*t), make([]int, batch*t) // targets all padding: no loss
	for b, h := range f.hist {
		copy(in[b*t:], h)
	}
	if err := g.run(f.src, f.srcLens, in, out); err != nil {
		return nil, fmt.Errorf("decode (full recomputation): %w", err)
	}
	all, err := logitsOf(g.exec, g.g.Logits)
	if err != nil {
		return nil, err
	}
	logits := make([]float32, batch*vocab)
	for b, h := range f.hist {
		if len(h) == 0 {
			continue
		}
		row := b*t + len(h) - 1
		copy(logits[b*vocab:(b+1)*vocab], all[row*vocab:(row+1)*vocab])
	}
	return logits, nil
}
