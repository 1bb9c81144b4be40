package train

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"

	"mqa/layers"
	"mqa/layers/blas"
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

// Bounds of the settings: every micro-batch of an update is held in memory, and a step
// count beyond MaxSteps is a typo, not a plan.
const (
	MaxAccum = 1024
	MaxSteps = 1 << 30
)

// Validate checks the settings.
func (s Settings) Validate() error {
	if s.Steps < 1 || s.Steps > MaxSteps {
		return fmt.Errorf("steps = %d must be between 1 and %d", s.Steps, MaxSteps)
	}
	if s.Accum < 1 || s.Accum > MaxAccum {
		return fmt.Errorf("accum = %d must be between 1 and %d", s.Accum, MaxAccum)
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

// Executor runs a model's graphs for a Trainer: the CPU executor in this package, or the
// CUDA executor (package cuda, build tag mqacuda), which keeps parameters, gradients and
// optimizer moments on the GPU.
type Executor interface {
	// TrainStep runs forward and backward on each micro-batch and returns the mean loss and
	// the norm of the averaged gradient; it leaves that gradient ready for Apply.
	TrainStep(micro []Batch) (loss, gradNorm float64, err error)
	// Apply updates the parameters with AdamW at learning rate lr, the gradient multiplied
	// by gradScale (averaging and clipping).
	Apply(lr, gradScale float64) error
	// Loss runs a forward pass without dropout or label smoothing and returns the mean loss.
	Loss(b Batch) (float64, error)
	// Sync brings parameters and optimizer moments back into the Trainer's Params and Opt
	// (a no-op on the CPU, where they are the same memory).
	Sync() error
	// Close frees what the executor holds.
	Close() error
}

// ExecutorFactory makes the executor of a Trainer, which takes the Trainer's Params and Opt.
type ExecutorFactory func(t *Trainer) (Executor, error)

// executors are the registered executors by device name. The CPU executor is built in; a
// build with the mqacuda tag registers "cuda" (package cuda's init).
var (
	executorsMu sync.RWMutex
	executors   = map[string]ExecutorFactory{
		"cpu": func(t *Trainer) (Executor, error) {
			if err := blas.Err(); err != nil {
				return nil, err
			}
			return newCPUExecutor(t), nil
		},
	}
)

// RegisterExecutor makes an executor available for training on device. Like
// database/sql.Register it panics when factory is nil or the device is already registered:
// both are mistakes in the program, not in its input.
func RegisterExecutor(device string, factory ExecutorFactory) {
	executorsMu.Lock()
	defer executorsMu.Unlock()
	if factory == nil {
		panic("train: RegisterExecutor of a nil factory for device " + device)
	}
	if _, dup := executors[device]; dup {
		panic("train: RegisterExecutor called twice for device " + device)
	}
	executors[device] = factory
}

// Executors lists the devices this build can train on, sorted.
func Executors() []string {
	executorsMu.RLock()
	defer executorsMu.RUnlock()
	return slices.Sorted(maps.Keys(executors))
}

// executorFor returns the factory registered for device.
func executorFor(device string) (ExecutorFactory, bool) {
	executorsMu.RLock()
	defer executorsMu.RUnlock()
	f, ok := executors[device]
	return f, ok
}

// Trainer holds a model's parameters and optimizer state and runs updates through an Executor.
type Trainer struct {
	Cfg         models.Config
	Params      *layers.Params
	Settings    Settings
	Opt         *AdamW
	Step        int    // updates done
	DropoutStep uint64 // the dropout masks' counter (see ops.Dropout)
	// Rank is the data-parallel rank whose executor this trainer makes (a GPU executor runs
	// on GPU Rank); 0 without data parallelism.
	Rank int

	names  []string
	device string
	ranks  int // data-parallel ranks (NewTrainerRanks); 0 or 1: one executor
	exec   Executor
}

// NewTrainer makes a trainer for cfg on a device ("cpu", or "cuda" in a cuda build). With
// params nil the weights are initialised from the seed; otherwise the given (loaded)
// parameters are trained.
func NewTrainer(cfg models.Config, params *layers.Params, s Settings, device string) (*Trainer, error) {
	t, err := newTrainer(cfg, params, s, device)
	if err != nil {
		return nil, err
	}
	if err := t.start(); err != nil {
		return nil, err
	}
	return t, nil
}

// newTrainer is NewTrainer without the executor, so that Resume can set the optimizer
// state before start hands it to the device.
func newTrainer(cfg models.Config, params *layers.Params, s Settings, device string) (*Trainer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := CheckDevice(device); err != nil {
		return nil, err
	}
	var err error
	if params == nil {
		if params, err = models.InitParams(cfg, s.Seed); err != nil {
			return nil, err
		}
	}
	t := &Trainer{Cfg: cfg, Params: params, Settings: s, names: params.Names(), device: device}
	sizes, decay := make([]int, len(t.names)), make([]bool, len(t.names))
	for i, n := range t.names {
		p := params.Get(n)
		sizes[i] = p.Shape().TotalSize()
		decay[i] = p.Dims() >= 2
	}
	t.Opt = NewAdamW(sizes, decay, s.Beta1, s.Beta2, s.Eps, s.WeightDecay)
	return t, nil
}

// start makes the trainer's executor, which takes the current Params and Opt.
func (t *Trainer) start() error {
	var exec Executor
	var err error
	if t.ranks > 1 {
		exec, err = newDataParallel(t)
	} else {
		factory, ok := executorFor(t.device)
		if !ok {
			return CheckDevice(t.device)
		}
		exec, err = factory(t)
	}
	t.exec = exec
	return err
}

// CheckDevice says whether this build can train on device (for the CPU: whether the
// BLAS that MQA_BLAS asks for is there).
func CheckDevice(device string) error {
	if _, ok := executorFor(device); ok {
		if device == "cpu" {
			return blas.Err()
		}
		return nil
	}
	if device == "cuda" {
		return fmt.Errorf("device cuda: this mqa was built without GPU support; build it with -tags mqacuda (scripts/gpu.sh build)")
	}
	return fmt.Errorf("unknown device %q (allowed: cpu, cuda)", device)
}

// ParamNames lists the parameters in the optimizer's order.
func (t *Trainer) ParamNames() []string { return t.names }

// Close releases the executor.
func (t *Trainer) Close() error { return t.exec.Close() }

// Sync brings device state back to Params and Opt (before saving a checkpoint).
func (t *Trainer) Sync() error { return t.exec.Sync() }

// Weights returns the trained parameters, first bringing them back from the device (on the
// CPU they are Params itself): what to save or decode with after training.
func (t *Trainer) Weights() (*layers.Params, error) {
	if err := t.Sync(); err != nil {
		return nil, fmt.Errorf("train: weights: %w", err)
	}
	return t.Params, nil
}

// TrainStep runs forward and backward on each micro-batch, averages the gradients, clips
// them and applies one AdamW update. A non-finite loss or gradient stops with
// ErrNonFinite before any update (or, with SkipNonFinite, skips the update).
func (t *Trainer) TrainStep(micro []Batch) (StepStats, error) {
	if len(micro) == 0 {
		return StepStats{}, fmt.Errorf("train step with no batches")
	}
	st := StepStats{Step: t.Step + 1, LR: t.Settings.Schedule.LR(t.Step + 1)}
	for _, b := range micro {
		st.Tokens += b.TargetTokens()
	}
	var err error
	st.Loss, st.GradNorm, err = t.exec.TrainStep(micro)
	if err != nil {
		return st, fmt.Errorf("step %d: %w", st.Step, err)
	}
	t.DropoutStep++
	if math.IsNaN(st.Loss) || math.IsInf(st.Loss, 0) || math.IsNaN(st.GradNorm) || math.IsInf(st.GradNorm, 0) {
		if !t.Settings.SkipNonFinite {
			return st, fmt.Errorf("step %d: loss %g, gradient norm %g: %w", st.Step, st.Loss, st.GradNorm, ErrNonFinite)
		}
		st.Skipped = true
		t.Step++
		return st, nil
	}
	scale := 1 / float64(len(micro))
	if t.Settings.Clip > 0 && st.GradNorm > t.Settings.Clip {
		scale *= t.Settings.Clip / st.GradNorm
	}
	if err := t.exec.Apply(st.LR, scale); err != nil {
		return st, err
	}
	t.Step++
	return st, nil
}

// Eval is the loss of a model on held-out batches.
type Eval struct {
	Tokens int     `json:"tokens"` // target tokens scored
	NLL    float64 `json:"nll"`    // mean negative log-likelihood, nats per token
	PPL    float64 `json:"ppl"`    // exp(NLL)
}

// Evaluate computes the mean token NLL (no label smoothing, no dropout) over batches.
func (t *Trainer) Evaluate(batches []Batch) (Eval, error) { return evaluate(t.exec, batches) }

// Evaluate scores batches with a model's parameters on the CPU.
func Evaluate(cfg models.Config, params *layers.Params, batches []Batch) (Eval, error) {
	e := newCPUExecutor(&Trainer{Cfg: cfg, Params: params})
	defer e.Close()
	return evaluate(e, batches)
}

func evaluate(e Executor, batches []Batch) (Eval, error) {
	var total float64
	var tokens int
	for _, b := range batches {
		loss, err := e.Loss(b)
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

// UseParams copies the values of p (same names and shapes, e.g. the best checkpoint of this
// run) into the trainer's parameters and reloads the executor, so that Evaluate scores them.
func (t *Trainer) UseParams(p *layers.Params) error {
	for _, name := range t.names {
		src := p.Get(name)
		if src == nil || !src.Shape().Eq(t.Params.Get(name).Shape()) {
			return fmt.Errorf("parameters: %s is missing or has another shape", name)
		}
		copy(t.Params.Get(name).Data().([]float32), src.Data().([]float32))
	}
	return t.reload()
}
