package train

import (
	"errors"
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers"
	"mqa/models"
)

// Settings are the optimisation hyper-parameters.
type Settings struct {
	Steps          int      `json:"steps"`
	Schedule       Schedule `json:"schedule"`
	Beta1          float64  `json:"beta1"`
	Beta2          float64  `json:"beta2"`
	Eps            float64  `json:"eps"`
	WeightDecay    float64  `json:"weight_decay"`
	Clip           float64  `json:"clip"`  // global gradient-norm bound; 0 = no clipping
	Accum          int      `json:"accum"` // micro-batches per update
	LabelSmoothing float64  `json:"label_smoothing"`
	Seed           uint64   `json:"seed"`
	SkipNonFinite  bool     `json:"skip_non_finite"` // skip an update with a NaN/Inf loss or gradient instead of stopping
}

// DefaultSettings are sensible settings for the small models mqa trains.
func DefaultSettings(steps int) Settings {
	return Settings{
		Steps:    steps,
		Schedule: Schedule{Kind: ScheduleInvSqrt, Peak: 1e-3, Warmup: max(1, min(400, steps/10)), Total: steps},
		Beta1:    0.9, Beta2: 0.98, Eps: 1e-9, WeightDecay: 0.01, Clip: 1, Accum: 1,
	}
}

// Validate checks the settings.
func (s Settings) Validate() error {
	if s.Steps < 1 {
		return fmt.Errorf("steps = %d must be positive", s.Steps)
	}
	if s.Accum < 1 {
		return fmt.Errorf("accum = %d must be positive", s.Accum)
	}
	if s.Clip < 0 || s.WeightDecay < 0 || s.LabelSmoothing < 0 || s.LabelSmoothing >= 1 {
		return fmt.Errorf("clip, weight decay must be ≥ 0 and label smoothing in [0, 1)")
	}
	if s.Beta1 < 0 || s.Beta1 >= 1 || s.Beta2 < 0 || s.Beta2 >= 1 || s.Eps <= 0 {
		return fmt.Errorf("adam needs 0 ≤ β < 1 and ε > 0")
	}
	return s.Schedule.Validate()
}

// Batch is one model input: for an LM, Tokens and Targets [Batch·TgtLen]; for translation
// also the padded source [Batch·SrcLen] and source lengths [Batch]. Pad targets (id 0)
// add no loss.
type Batch struct {
	Shape           models.Shape
	Src, SrcLens    []int
	Tokens, Targets []int
}

// TargetTokens counts the targets that add loss.
func (b Batch) TargetTokens() int {
	n := 0
	for _, t := range b.Targets {
		if t != models.PadID {
			n++
		}
	}
	return n
}

// ErrNonFinite reports a NaN or infinite loss or gradient norm.
var ErrNonFinite = errors.New("non-finite loss or gradient")

// StepStats describes one update.
type StepStats struct {
	Step     int     `json:"step"`
	Loss     float64 `json:"loss"`      // mean training loss of the micro-batches (with label smoothing)
	LR       float64 `json:"lr"`        // learning rate used
	GradNorm float64 `json:"grad_norm"` // before clipping
	Tokens   int     `json:"tokens"`    // target tokens in the update
	Skipped  bool    `json:"skipped,omitempty"`
}

// compiled is a graph with its machine; grads is nil for evaluation graphs.
type compiled struct {
	g     *models.Graph
	grads []*G.Node
	vm    G.VM
}

// Trainer holds a model's parameters and optimizer state and runs updates on the CPU.
type Trainer struct {
	Cfg         models.Config
	Params      *layers.Params
	Settings    Settings
	Opt         *AdamW
	Step        int    // updates done
	DropoutStep uint64 // the dropout masks' counter (see ops.Dropout)

	names  []string
	train  map[models.Shape]*compiled
	eval   map[models.Shape]*compiled
	gradAc [][]float32
}

// NewTrainer makes a trainer for cfg. With params nil the weights are initialised from the
// seed; otherwise the given (loaded) parameters are trained.
func NewTrainer(cfg models.Config, params *layers.Params, s Settings) (*Trainer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var err error
	if params == nil {
		if params, err = InitParams(cfg, s.Seed); err != nil {
			return nil, err
		}
	}
	t := &Trainer{Cfg: cfg, Params: params, Settings: s, names: params.Names(),
		train: map[models.Shape]*compiled{}, eval: map[models.Shape]*compiled{}}
	sizes, decay := make([]int, len(t.names)), make([]bool, len(t.names))
	for i, n := range t.names {
		p := params.Get(n)
		sizes[i] = p.Shape().TotalSize()
		decay[i] = p.Dims() >= 2
	}
	t.Opt = NewAdamW(sizes, decay, s.Beta1, s.Beta2, s.Eps, s.WeightDecay)
	return t, nil
}

// InitParams creates a model's parameters from a seed by building its smallest graph.
func InitParams(cfg models.Config, seed uint64) (*layers.Params, error) {
	p := layers.NewParams(tensor.Float32, seed)
	shape := models.Shape{Batch: 1, TgtLen: 1}
	if cfg.Task == models.TaskTranslate {
		shape.SrcLen = 1
	}
	if _, err := models.Build(p, cfg, shape, models.Options{}); err != nil {
		return nil, err
	}
	return p, nil
}

// ParamNames lists the parameters in the optimizer's order.
func (t *Trainer) ParamNames() []string { return t.names }

func (t *Trainer) compile(shape models.Shape, training bool) (*compiled, error) {
	cache := t.eval
	if training {
		cache = t.train
	}
	if c, ok := cache[shape]; ok {
		return c, nil
	}
	opt := models.Options{}
	if training {
		opt = models.Options{Train: true, LabelSmoothing: t.Settings.LabelSmoothing, DropoutSeed: t.Settings.Seed, DropoutStep: &t.DropoutStep}
	}
	g, err := models.Build(t.Params, t.Cfg, shape, opt)
	if err != nil {
		return nil, err
	}
	c := &compiled{g: g}
	if training {
		nodes := make([]*G.Node, len(t.names))
		byName := map[string]*G.Node{}
		for _, n := range g.ParamNodes() {
			byName[n.Name()] = n
		}
		for i, name := range t.names {
			if nodes[i] = byName[name]; nodes[i] == nil {
				return nil, fmt.Errorf("graph for %+v does not use parameter %s", shape, name)
			}
		}
		if c.grads, err = G.Grad(g.Loss, nodes...); err != nil {
			return nil, fmt.Errorf("building gradients: %w", err)
		}
	}
	c.vm = G.NewTapeMachine(g.G)
	cache[shape] = c
	return c, nil
}

// forward feeds a batch and runs a compiled graph; it returns the mean loss.
func (c *compiled) forward(b Batch) (float64, error) {
	var err error
	if c.g.Cfg.Task == models.TaskTranslate {
		err = c.g.FeedTranslation(b.Src, b.SrcLens, b.Tokens, b.Targets)
	} else {
		err = c.g.FeedLM(b.Tokens, b.Targets)
	}
	if err != nil {
		return 0, err
	}
	c.vm.Reset()
	if err := c.vm.RunAll(); err != nil {
		return 0, err
	}
	switch v := c.g.Loss.Value().Data().(type) {
	case float32:
		return float64(v), nil
	case float64:
		return v, nil
	}
	return 0, fmt.Errorf("loss has type %T", c.g.Loss.Value().Data())
}

// TrainStep runs forward and backward on each micro-batch, averages the gradients, clips
// them and applies one AdamW update.
func (t *Trainer) TrainStep(micro []Batch) (StepStats, error) {
	if len(micro) == 0 {
		return StepStats{}, fmt.Errorf("train step with no batches")
	}
	st := StepStats{Step: t.Step + 1, LR: t.Settings.Schedule.LR(t.Step + 1)}
	var grads [][]float32
	for k, b := range micro {
		c, err := t.compile(b.Shape, true)
		if err != nil {
			return st, err
		}
		loss, err := c.forward(b)
		if err != nil {
			return st, fmt.Errorf("step %d: %w", st.Step, err)
		}
		st.Loss += loss / float64(len(micro))
		st.Tokens += b.TargetTokens()
		if len(micro) == 1 {
			grads = gradData(c.grads)
			break
		}
		t.accumulate(c.grads, k == 0)
		grads = t.gradAc
	}
	scale := 1 / float64(len(micro))
	st.GradNorm = GlobalNorm(grads) * scale
	t.DropoutStep++
	if math.IsNaN(st.Loss) || math.IsInf(st.Loss, 0) || math.IsNaN(st.GradNorm) || math.IsInf(st.GradNorm, 0) {
		if !t.Settings.SkipNonFinite {
			return st, fmt.Errorf("step %d: loss %g, gradient norm %g: %w", st.Step, st.Loss, st.GradNorm, ErrNonFinite)
		}
		st.Skipped = true
		t.Step++
		return st, nil
	}
	if t.Settings.Clip > 0 && st.GradNorm > t.Settings.Clip {
		scale *= t.Settings.Clip / st.GradNorm
	}
	if err := t.Opt.Update(t.paramData(), grads, st.LR, scale); err != nil {
		return st, err
	}
	t.Step++
	return st, nil
}

// accumulate adds the gradients of the last micro-batch into gradAc (or starts it).
func (t *Trainer) accumulate(grads []*G.Node, first bool) {
	if t.gradAc == nil {
		t.gradAc = make([][]float32, len(grads))
		for i, g := range grads {
			t.gradAc[i] = make([]float32, g.Shape().TotalSize())
		}
	}
	for i, g := range gradData(grads) {
		acc := t.gradAc[i]
		if first {
			copy(acc, g)
			continue
		}
		for j, v := range g {
			acc[j] += v
		}
	}
}

func gradData(grads []*G.Node) [][]float32 {
	out := make([][]float32, len(grads))
	for i, g := range grads {
		out[i] = g.Value().Data().([]float32)
	}
	return out
}

func (t *Trainer) paramData() [][]float32 {
	out := make([][]float32, len(t.names))
	for i, n := range t.names {
		out[i] = t.Params.Get(n).Data().([]float32)
	}
	return out
}

// Eval is the loss of a model on held-out batches.
type Eval struct {
	Tokens int     `json:"tokens"` // target tokens scored
	NLL    float64 `json:"nll"`    // mean negative log-likelihood, nats per token
	PPL    float64 `json:"ppl"`    // exp(NLL)
}

// Evaluate computes the mean token NLL (no label smoothing, no dropout) over batches.
func (t *Trainer) Evaluate(batches []Batch) (Eval, error) {
	return Evaluate(t.Params, t.Cfg, batches, t.eval)
}

// Evaluate scores batches with the model's parameters; cache (may be nil) keeps compiled
// graphs between calls.
func Evaluate(params *layers.Params, cfg models.Config, batches []Batch, cache map[models.Shape]*compiled) (Eval, error) {
	var total float64
	var tokens int
	t := &Trainer{Cfg: cfg, Params: params, eval: cache}
	if t.eval == nil {
		t.eval = map[models.Shape]*compiled{}
	}
	for _, b := range batches {
		c, err := t.compile(b.Shape, false)
		if err != nil {
			return Eval{}, err
		}
		loss, err := c.forward(b)
		if err != nil {
			return Eval{}, err
		}
		n := b.TargetTokens()
		total += loss * float64(n)
		tokens += n
	}
	if tokens == 0 {
		return Eval{}, fmt.Errorf("evaluation: no target tokens")
	}
	nll := total / float64(tokens)
	return Eval{Tokens: tokens, NLL: nll, PPL: math.Exp(nll)}, nil
}
