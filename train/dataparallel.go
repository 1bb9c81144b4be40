package train

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"gorgonia.org/tensor"

	"mqa/layers"
	"mqa/models"
)

// RankExecutor is an Executor that can be one rank of data-parallel training: each rank
// runs its shards of the global batch, the ranks sum their gradients with an AllReducer,
// and every rank applies the same AdamW update to its own copy of the parameters.
type RankExecutor interface {
	Executor
	// Join makes the executor rank of the ranks that r joins (NCCL: its member of the
	// communicator); every rank calls it at the same time, before the first step, so that a
	// rank that fails later finds the others joined and can abort them.
	Join(r AllReducer, rank int) error
	// WeightedTrainStep runs forward and backward on each batch and leaves
	// Σ weights[k]·∇loss_k in the executor's gradient buffers (zeros for no batches, which
	// Apply then reads); it returns Σ weights[k]·loss_k.
	WeightedTrainStep(micro []Batch, weights []float64) (float64, error)
	// ReduceGradients sums the gradient buffers across ranks with r, bucket by bucket in
	// plan order; every rank calls it at the same time with the same plan.
	ReduceGradients(plan []Bucket, r AllReducer, rank int) error
	// GradNorm is the L2 norm of the gradient buffers.
	GradNorm() (float64, error)
}

// AllReducerFactory makes the all-reducer that joins ranks executors of a device.
type AllReducerFactory func(ranks int) (AllReducer, error)

// allReducers are the registered all-reducers by device name. The CPU's ranks are goroutines
// joined by a LocalAllReducer; a build with the mqacuda tag registers "cuda" (NCCL).
var (
	allReducersMu sync.RWMutex
	allReducers   = map[string]AllReducerFactory{
		"cpu": func(ranks int) (AllReducer, error) { return NewLocalAllReducer(ranks), nil },
	}
)

// RegisterAllReducer makes data-parallel training available on device. Like RegisterExecutor
// it panics when factory is nil or the device is already registered.
func RegisterAllReducer(device string, factory AllReducerFactory) {
	allReducersMu.Lock()
	defer allReducersMu.Unlock()
	if factory == nil {
		panic("train: RegisterAllReducer of a nil factory for device " + device)
	}
	if _, dup := allReducers[device]; dup {
		panic("train: RegisterAllReducer called twice for device " + device)
	}
	allReducers[device] = factory
}

// allReducerFor returns the all-reducer factory registered for device.
func allReducerFor(device string) (AllReducerFactory, bool) {
	allReducersMu.RLock()
	defer allReducersMu.RUnlock()
	f, ok := allReducers[device]
	return f, ok
}

// NewTrainerRanks is NewTrainer for data-parallel training on ranks executors of the
// device (ranks 1 is NewTrainer). Rank 0 trains the trainer's own Params and Opt, which
// checkpoints save; the other ranks train copies that every update keeps equal to them.
func NewTrainerRanks(cfg models.Config, params *layers.Params, s Settings, device string, ranks int) (*Trainer, error) {
	if err := CheckRanks(device, ranks); err != nil {
		return nil, err
	}
	t, err := newTrainer(cfg, params, s, device)
	if err != nil {
		return nil, err
	}
	t.ranks = ranks
	if err := t.start(); err != nil {
		return nil, err
	}
	return t, nil
}

// CheckRanks says whether this build can train on ranks executors of device.
func CheckRanks(device string, ranks int) error {
	if ranks < 1 {
		return fmt.Errorf("%d ranks: need at least 1", ranks)
	}
	if err := CheckDevice(device); err != nil {
		return err
	}
	if _, ok := allReducerFor(device); ranks > 1 && !ok {
		return fmt.Errorf("device %s: this build cannot all-reduce gradients across %d ranks of %s (several GPUs need the mqacuda build with NCCL, see the README's \"Several GPUs\")", device, ranks, device)
	}
	return nil
}

// Ranks is the number of data-parallel ranks the trainer runs (1 without data parallelism).
func (t *Trainer) Ranks() int { return max(1, t.ranks) }

// dataParallel is the Executor of a trainer with several ranks.
type dataParallel struct {
	t        *Trainer
	ranks    []RankExecutor
	replicas []*Trainer // the trainers of ranks 1, 2, ...: their own parameters and moments
	reducer  AllReducer
	plan     []Bucket // made from the first training graph
}

// newDataParallel makes the executors of t's ranks and the all-reducer that joins them.
func newDataParallel(t *Trainer) (Executor, error) {
	newReducer, ok := allReducerFor(t.device)
	if !ok {
		return nil, CheckRanks(t.device, t.ranks)
	}
	reducer, err := newReducer(t.ranks)
	if err != nil {
		return nil, fmt.Errorf("joining %d ranks on %s: %w", t.ranks, t.device, err)
	}
	dp := &dataParallel{t: t, reducer: reducer}
	for r := range t.ranks {
		rt := t
		if r > 0 {
			rt = t.replica(r)
			dp.replicas = append(dp.replicas, rt)
		}
		factory, ok := executorFor(t.device)
		if !ok {
			dp.Close()
			return nil, CheckDevice(t.device)
		}
		exec, err := factory(rt)
		if err != nil {
			dp.Close()
			return nil, fmt.Errorf("rank %d: %w", r, err)
		}
		re, ok := exec.(RankExecutor)
		if !ok {
			exec.Close()
			dp.Close()
			return nil, fmt.Errorf("device %s: its executor cannot be a rank of data-parallel training", t.device)
		}
		dp.ranks = append(dp.ranks, re)
	}
	if err := dp.each(func(r int) error { return dp.ranks[r].Join(reducer, r) }); err != nil {
		dp.Close()
		return nil, fmt.Errorf("joining %d ranks on %s: %w", t.ranks, t.device, err)
	}
	if _, ok := dp.ranks[0].(MemoryPlanner); ok {
		return plannedDataParallel{dp}, nil
	}
	return dp, nil
}

// replica is a trainer for rank r with copies of t's parameters and optimizer state.
func (t *Trainer) replica(r int) *Trainer {
	params := layers.NewParams(t.Params.Dtype(), 0)
	for _, name := range t.names {
		// Set only fails on a dtype or shape mismatch, which a copy cannot have.
		_ = params.Set(name, t.Params.Get(name).Clone().(*tensor.Dense))
	}
	opt := *t.Opt
	opt.M, opt.V = cloneAll(t.Opt.M), cloneAll(t.Opt.V)
	return &Trainer{Cfg: t.Cfg, Params: params, Settings: t.Settings, Opt: &opt, Step: t.Step, DropoutStep: t.DropoutStep,
		Rank: r, names: t.names, device: t.device, ranks: t.ranks}
}

func cloneAll(xs [][]float32) [][]float32 {
	out := make([][]float32, len(xs))
	for i, x := range xs {
		out[i] = append([]float32(nil), x...)
	}
	return out
}

// each runs f for every rank at once and waits for all.
func (dp *dataParallel) each(f func(r int) error) error {
	errs := make([]error, len(dp.ranks))
	var wg sync.WaitGroup
	for r := range dp.ranks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[r] = f(r); errs[r] != nil {
				errs[r] = fmt.Errorf("rank %d: %w", r, errs[r])
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// TrainStep splits the micro-batches among the ranks (SplitGlobalBatch), runs them and sums
// the ranks' gradients, so that every rank holds the gradient one executor would hold.
func (dp *dataParallel) TrainStep(micro []Batch) (loss, gradNorm float64, err error) {
	shards, err := SplitGlobalBatch(micro, len(dp.ranks))
	if err != nil {
		return 0, 0, err
	}
	if dp.plan == nil {
		if dp.plan, err = dp.t.bucketPlan(micro[0].Shape); err != nil {
			return 0, 0, err
		}
	}
	for _, rt := range dp.replicas {
		rt.DropoutStep = dp.t.DropoutStep
	}
	losses := make([]float64, len(dp.ranks))
	err = dp.each(func(r int) error {
		batches, weights := make([]Batch, len(shards[r])), make([]float64, len(shards[r]))
		for k, s := range shards[r] {
			batches[k], weights[k] = s.Batch, s.Weight
		}
		var err error
		if losses[r], err = dp.ranks[r].WeightedTrainStep(batches, weights); err != nil {
			dp.reducer.Abort(fmt.Errorf("rank %d failed", r))
			return err
		}
		if err := dp.ranks[r].ReduceGradients(dp.plan, dp.reducer, r); err != nil {
			dp.reducer.Abort(fmt.Errorf("rank %d failed", r))
			return fmt.Errorf("all-reduce: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for _, l := range losses {
		loss += l
	}
	norm, err := dp.ranks[0].GradNorm()
	k := float64(len(micro))
	return loss / k, norm / k, err
}

// bucketPlan groups the gradients into buckets in the order a training graph of the given
// shape finishes them.
func (t *Trainer) bucketPlan(shape models.Shape) ([]Bucket, error) {
	g, grads, err := t.Graph(shape, true)
	if err != nil {
		return nil, err
	}
	ready, err := GradientReadyOrder(g, grads)
	if err != nil {
		return nil, err
	}
	return PlanBuckets(ready, t.Opt.sizes(), DefaultBucketBytes)
}

// sizes is the number of values of each parameter.
func (o *AdamW) sizes() []int {
	out := make([]int, len(o.M))
	for i, m := range o.M {
		out[i] = len(m)
	}
	return out
}

// Apply applies the same update on every rank.
func (dp *dataParallel) Apply(lr, gradScale float64) error {
	return dp.each(func(r int) error { return dp.ranks[r].Apply(lr, gradScale) })
}

// Loss evaluates on rank 0.
func (dp *dataParallel) Loss(b Batch) (float64, error) { return dp.ranks[0].Loss(b) }

// Sync brings rank 0's state into the trainer (the other ranks hold the same).
func (dp *dataParallel) Sync() error { return dp.ranks[0].Sync() }

// Close frees the all-reducer (where it holds anything, as NCCL communicators do) and
// closes every rank's executor.
func (dp *dataParallel) Close() error {
	var errs []error
	if c, ok := dp.reducer.(io.Closer); ok {
		errs = append(errs, c.Close())
	}
	for _, e := range dp.ranks {
		errs = append(errs, e.Close())
	}
	return errors.Join(errs...)
}

// plannedDataParallel is a dataParallel whose ranks hold device memory.
type plannedDataParallel struct{ *dataParallel }

// Reserve sets memory aside on every rank for the shapes it will run (rank 0 also
// evaluates).
func (dp plannedDataParallel) Reserve(train, eval []models.Shape) error {
	shapes := RankShapes(train, dp.t.Settings.Accum, len(dp.ranks))
	return dp.each(func(r int) error {
		var ev []models.Shape
		if r == 0 {
			ev = eval
		}
		return dp.ranks[r].(MemoryPlanner).Reserve(shapes, ev)
	})
}

// PeakMemory is the most memory any rank has held.
func (dp plannedDataParallel) PeakMemory() int64 {
	var peak int64
	for _, e := range dp.ranks {
		peak = max(peak, e.(MemoryPlanner).PeakMemory())
	}
	return peak
}
