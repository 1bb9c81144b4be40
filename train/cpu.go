package train

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"mqa/layers/program"
	"mqa/models"
)

// compiled is a graph with its program; grads is nil for evaluation graphs.
type compiled struct {
	g     *models.Graph
	grads []*G.Node
	prog  *program.Program
}

// compiledKey names a compiled graph: its batch shape and whether it trains.
type compiledKey struct {
	shape    models.Shape
	training bool
}

// cpuExecutor runs graphs as programs (Gorgonia's ops in topological order, each node's
// memory kept from one run to the next), one compiled graph per batch shape (the most
// recently used ones, within program.DefaultBudget), and updates the parameters in place.
type cpuExecutor struct {
	t        *Trainer
	compiled *program.Cache[compiledKey, *compiled]
	params   [][]float32 // the parameters' data in ParamNames order, updated in place
	views    [][]float32 // the gradient nodes' data after the last run
	acc      [][]float32 // accumulation buffer for several micro-batches
	grads    [][]float32 // the gradient of the last TrainStep: views or acc
	flat     []float32   // a bucket of gradients being all-reduced (data-parallel ranks)
}

func newCPUExecutor(t *Trainer) *cpuExecutor {
	params := make([][]float32, len(t.names))
	for i, n := range t.names {
		params[i] = t.Params.Get(n).Data().([]float32)
	}
	kept := func(c *compiled) int64 { return c.prog.Bytes() }
	return &cpuExecutor{t: t, compiled: program.NewCache[compiledKey](program.DefaultBudget, kept), params: params}
}

// compile returns the compiled graph of a batch shape, building it (after dropping the least
// recently used graphs while those kept hold more than the budget) when it is not kept.
func (e *cpuExecutor) compile(shape models.Shape, training bool) (*compiled, error) {
	return e.compiled.GetOrBuild(compiledKey{shape, training}, func() (*compiled, error) {
		g, grads, err := e.t.Graph(shape, training)
		if err != nil {
			return nil, err
		}
		prog, err := program.New(g.G)
		return &compiled{g: g, grads: grads, prog: prog}, err
	})
}

// Graph builds the model's graph for a batch shape. A training graph has dropout, label
// smoothing and the gradient nodes of the loss with respect to every parameter, in
// ParamNames order; an evaluation graph has neither, and no gradients.
func (t *Trainer) Graph(shape models.Shape, training bool) (*models.Graph, []*G.Node, error) {
	opt := models.Options{}
	if training {
		opt = models.Options{Train: true, LabelSmoothing: t.Settings.LabelSmoothing, DropoutSeed: t.Settings.Seed, DropoutStep: &t.DropoutStep}
	}
	g, err := models.Build(t.Params, t.Cfg, shape, opt)
	if err != nil || !training {
		return g, nil, err
	}
	wrt, err := ParamNodes(g, t.names)
	if err != nil {
		return nil, nil, err
	}
	grads, err := G.Grad(g.Loss, wrt...)
	if err != nil {
		return nil, nil, fmt.Errorf("building gradients: %w", err)
	}
	return g, grads, nil
}

// ParamNodes returns the graph's parameter nodes in the order of names; a parameter the
// graph does not use is an error.
func ParamNodes(g *models.Graph, names []string) ([]*G.Node, error) {
	byName := map[string]*G.Node{}
	for _, n := range g.ParamNodes() {
		byName[n.Name()] = n
	}
	nodes := make([]*G.Node, len(names))
	for i, name := range names {
		if nodes[i] = byName[name]; nodes[i] == nil {
			return nil, fmt.Errorf("graph for %+v does not use parameter %s", g.Shape, name)
		}
	}
	return nodes, nil
}

// Feed sets a graph's inputs from a batch.
func Feed(g *models.Graph, b Batch) error {
	if g.Shape != b.Shape {
		return fmt.Errorf("batch of shape %+v fed to a graph of shape %+v", b.Shape, g.Shape)
	}
	if g.Cfg.Task == models.TaskTranslate {
		return g.FeedTranslation(b.Src, b.SrcLens, b.Tokens, b.Targets)
	}
	return g.FeedLM(b.Tokens, b.Targets)
}

// forward feeds a batch and runs a compiled graph; it returns the mean loss.
func (c *compiled) forward(b Batch) (float64, error) {
	if err := Feed(c.g, b); err != nil {
		return 0, err
	}
	if err := c.prog.Run(); err != nil {
		return 0, err
	}
	loss, err := c.prog.Value(c.g.Loss)
	if err != nil {
		return 0, err
	}
	switch v := loss.Data().(type) {
	case float32:
		return float64(v), nil
	case float64:
		return v, nil
	}
	return 0, fmt.Errorf("loss has type %T", loss.Data())
}

// floats32 returns the float32 data of a node's value after the last run.
func (c *compiled) floats32(n *G.Node) ([]float32, error) {
	v, err := c.prog.Value(n)
	if err != nil {
		return nil, err
	}
	d, ok := v.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("%s has type %T, want []float32", n.Name(), v.Data())
	}
	return d, nil
}

func (e *cpuExecutor) TrainStep(micro []Batch) (loss, gradNorm float64, err error) {
	for k, b := range micro {
		c, err := e.compile(b.Shape, true)
		if err != nil {
			return 0, 0, err
		}
		l, err := c.forward(b)
		if err != nil {
			return 0, 0, err
		}
		loss += l / float64(len(micro))
		e.views = e.views[:0]
		for _, g := range c.grads {
			d, err := c.floats32(g)
			if err != nil {
				return 0, 0, err
			}
			e.views = append(e.views, d)
		}
		if len(micro) == 1 {
			e.grads = e.views
			break
		}
		e.accumulate(k == 0)
		e.grads = e.acc
	}
	return loss, GlobalNorm(e.grads) / float64(len(micro)), nil
}

func (e *cpuExecutor) Apply(lr, gradScale float64) error {
	return e.t.Opt.Update(e.params, e.grads, lr, gradScale)
}

func (e *cpuExecutor) Loss(b Batch) (float64, error) {
	c, err := e.compile(b.Shape, false)
	if err != nil {
		return 0, err
	}
	return c.forward(b)
}

func (e *cpuExecutor) Sync() error { return nil }

func (e *cpuExecutor) Close() error {
	e.compiled.Clear()
	return nil
}

// accumulate adds the gradients of the last micro-batch (views) into acc, or starts it.
func (e *cpuExecutor) accumulate(first bool) {
	if e.acc == nil {
		e.acc = make([][]float32, len(e.views))
		for i, g := range e.views {
			e.acc[i] = make([]float32, len(g))
		}
	}
	for i, g := range e.views {
		acc := e.acc[i]
		if first {
			copy(acc, g)
			continue
		}
		for j, v := range g {
			acc[j] += v
		}
	}
}
