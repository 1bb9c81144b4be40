package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/models"
)

// Source yields training batches and can save and restore its position.
type Source interface {
	Next() Batch
	State() data.StreamState
	Restore(data.StreamState) error
}

// State is the run state saved with each checkpoint, enough to continue exactly.
type State struct {
	Step        int              `json:"step"`
	OptSteps    int              `json:"optimizer_steps"`
	DropoutStep uint64           `json:"dropout_step"`
	Data        data.StreamState `json:"data"`
	Settings    Settings         `json:"settings"`
	ValLoss     *float64         `json:"val_loss,omitempty"`
	Elapsed     float64          `json:"elapsed_s"`
}

// RunOptions control Run.
type RunOptions struct {
	Out             string    // run directory: step-* checkpoints and train.jsonl
	Valid           []Batch   // validation batches (may be empty)
	EvalBatches     int       // batches of Valid used by every validation during the run (0: all); Summary.ValLoss uses all
	EvalEvery       int       // validate every this many steps (and at the end); 0: only at the end
	CheckpointEvery int       // checkpoint every this many steps (and at the end); 0: only at the end
	KeepLast        int       // complete checkpoints kept besides the best; 0 keeps all
	Progress        io.Writer // where progress goes (a bar on a terminal, plain lines otherwise); nil for none
	Label           string    // progress-bar label
	// SaveExtra writes further files (the tokenizer) into a checkpoint being written.
	SaveExtra func(dir string) error
	// Elapsed is the training time of earlier runs (when resuming).
	Elapsed time.Duration
}

// LogEntry is one line of train.jsonl: a training step, or a validation result.
type LogEntry struct {
	Step     int      `json:"step"`
	Loss     *float64 `json:"loss,omitempty"`
	LR       *float64 `json:"lr,omitempty"`
	GradNorm *float64 `json:"grad_norm,omitempty"`
	TokensPS *float64 `json:"tokens_per_s,omitempty"`
	Tokens   int      `json:"tokens,omitempty"` // target tokens of the step
	ValLoss  *float64 `json:"val_loss,omitempty"`
	ValPPL   *float64 `json:"val_ppl,omitempty"`
	// PeakGPUBytes is the most GPU memory the executor has held so far (GPU runs only).
	PeakGPUBytes *int64  `json:"peak_gpu_bytes,omitempty"`
	Skipped      bool    `json:"skipped,omitempty"`
	ElapsedS     float64 `json:"elapsed_s"`
	Timestamp    string  `json:"time"`
}

// Summary is the outcome of Run.
type Summary struct {
	Steps      int     `json:"steps"`
	FinalLoss  float64 `json:"final_loss"`
	ValLoss    float64 `json:"val_loss"` // on all of Valid at the end; NaN without validation data
	Tokens     int     `json:"tokens"`
	Seconds    float64 `json:"seconds"` // training time of this run (without validation and checkpoints)
	Checkpoint string  `json:"checkpoint"`
	// PeakGPUBytes is the most GPU memory the executor held during the run (0 on the CPU).
	PeakGPUBytes int64 `json:"peak_gpu_bytes,omitempty"`
}

// ErrInterrupted reports a run stopped by its context after saving a checkpoint.
var ErrInterrupted = errors.New("training interrupted")

// Run trains until Settings.Steps, validating, logging and checkpointing on the way. When
// ctx is cancelled it finishes the current step, writes a checkpoint and returns
// ErrInterrupted. A non-finite loss stops it with ErrNonFinite (the last checkpoint stays).
func (t *Trainer) Run(ctx context.Context, src Source, o RunOptions) (Summary, error) {
	sum := Summary{ValLoss: math.NaN()}
	mgr := checkpoints.Manager{Root: o.Out, KeepLast: o.KeepLast}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return sum, fmt.Errorf("run directory: %w", err)
	}
	logf, err := openLog(filepath.Join(o.Out, checkpoints.LogFile), t.Step)
	if err != nil {
		return sum, err
	}
	defer logf.Close()
	enc := json.NewEncoder(logf)

	bar := NewProgress(o.Progress, t.Settings.Steps, o.Label, "steps")
	bar.Set(t.Step)
	start := time.Now()
	var trainTime time.Duration
	elapsed := func() float64 { return (o.Elapsed + time.Since(start)).Seconds() }
	// The validation loss of the current step (NaN when this step was not validated): a
	// checkpoint records it, and the best checkpoint is chosen by it.
	lastVal, valStep := math.NaN(), -1
	save := func() error {
		if err := t.Sync(); err != nil {
			return err
		}
		v := math.NaN()
		if valStep == t.Step {
			v = lastVal
		}
		st := State{Step: t.Step, OptSteps: t.Opt.Steps, DropoutStep: t.DropoutStep, Data: src.State(),
			Settings: t.Settings, ValLoss: finite(v), Elapsed: elapsed()}
		dir, err := mgr.Save(t.Step, v, func(dir string) error { return t.writeCheckpoint(dir, st, o.SaveExtra) })
		sum.Checkpoint = dir
		return err
	}
	// Every validation during the run uses the same batches, so the logged curve and the
	// choice of the best checkpoint compare like with like.
	valid := o.Valid
	if o.EvalBatches > 0 && len(valid) > o.EvalBatches {
		valid = valid[:o.EvalBatches]
	}
	validate := func() error {
		if len(valid) == 0 {
			return nil
		}
		ev, err := t.Evaluate(valid)
		if err != nil {
			return fmt.Errorf("validation at step %d: %w", t.Step, err)
		}
		lastVal, valStep = ev.NLL, t.Step
		return enc.Encode(LogEntry{Step: t.Step, ValLoss: &ev.NLL, ValPPL: &ev.PPL, ElapsedS: elapsed(), Timestamp: now()})
	}
	if ss, ok := src.(ShapeSource); ok && t.Step < t.Settings.Steps {
		if err := t.Reserve(ss.Shapes(), batchShapes(o.Valid)); err != nil {
			return sum, err
		}
	}
	peak := func() *int64 {
		if b, ok := t.PeakMemory(); ok {
			sum.PeakGPUBytes = b
			return &b
		}
		return nil
	}
	micro := make([]Batch, t.Settings.Accum)
	for t.Step < t.Settings.Steps {
		for i := range micro {
			micro[i] = src.Next()
		}
		stepStart := time.Now()
		st, err := t.TrainStep(micro)
		if err != nil {
			return sum, err
		}
		dt := time.Since(stepStart)
		trainTime += dt
		sum.Steps++
		sum.Tokens += st.Tokens
		sum.FinalLoss = st.Loss
		tps := float64(st.Tokens) / dt.Seconds()
		if err := enc.Encode(LogEntry{Step: st.Step, Loss: finite(st.Loss), LR: &st.LR, GradNorm: finite(st.GradNorm), TokensPS: &tps, Tokens: st.Tokens,
			PeakGPUBytes: peak(), Skipped: st.Skipped, ElapsedS: elapsed(), Timestamp: now()}); err != nil {
			return sum, fmt.Errorf("writing %s: %w", checkpoints.LogFile, err)
		}
		bar.Describe(fmt.Sprintf("%s loss %.3f", o.Label, st.Loss))
		bar.Set(t.Step)
		last := t.Step == t.Settings.Steps
		if last || (o.EvalEvery > 0 && t.Step%o.EvalEvery == 0) {
			if err := validate(); err != nil {
				return sum, err
			}
		}
		interrupted := ctx.Err() != nil
		if last || interrupted || (o.CheckpointEvery > 0 && t.Step%o.CheckpointEvery == 0) {
			if err := save(); err != nil {
				return sum, fmt.Errorf("checkpoint at step %d: %w", t.Step, err)
			}
		}
		if interrupted && !last {
			sum.Seconds = trainTime.Seconds()
			return sum, ErrInterrupted
		}
	}
	bar.Finish()
	sum.Seconds = trainTime.Seconds()
	switch {
	case len(valid) == len(o.Valid) && valStep == t.Step:
		sum.ValLoss = lastVal // the last step was validated on all of Valid
	case len(o.Valid) > 0:
		ev, err := t.Evaluate(o.Valid)
		if err != nil {
			return sum, fmt.Errorf("final validation: %w", err)
		}
		sum.ValLoss = ev.NLL
	}
	return sum, nil
}

// finite returns &v, or nil (omitted from the log) for NaN and infinities.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// openLog opens train.jsonl for appending, first dropping any lines after step (left by a
// run that crashed after its last checkpoint), so the log of a resumed run reads as one run.
// Temporary copies of the log that a crash left beside it are removed.
func openLog(path string, step int) (*os.File, error) {
	stale, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-[0-9]*"))
	if err != nil {
		return nil, err
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("removing %s: %w", p, err)
		}
	}
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var keep []byte
	for line := range bytes.Lines(old) {
		if !bytes.HasSuffix(line, []byte("\n")) {
			break // a torn last line is dropped
		}
		var e LogEntry
		if json.Unmarshal(line, &e) == nil && e.Step <= step {
			keep = append(keep, line...)
		}
	}
	// Rewrite atomically, so a crash now cannot lose the log.
	if err := checkpoints.WriteFileAtomic(path, 0o644, func(w io.Writer) error { _, err := w.Write(keep); return err }); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return f, nil
}

// writeCheckpoint writes the model, optimizer, state and extra files into dir.
func (t *Trainer) writeCheckpoint(dir string, st State, extra func(string) error) error {
	if err := models.SaveModel(dir, t.Cfg, t.Params); err != nil {
		return err
	}
	var ts []checkpoints.Tensor
	for i, name := range t.names {
		shape := append([]int(nil), t.Params.Get(name).Shape()...)
		ts = append(ts, checkpoints.Tensor{Name: "m." + name, Shape: shape, Data: t.Opt.M[i]},
			checkpoints.Tensor{Name: "v." + name, Shape: shape, Data: t.Opt.V[i]})
	}
	if err := checkpoints.SaveSafetensors(filepath.Join(dir, checkpoints.OptimizerFile), ts, nil); err != nil {
		return err
	}
	if err := checkpoints.WriteJSON(filepath.Join(dir, checkpoints.StateFile), st); err != nil {
		return err
	}
	if extra != nil {
		return extra(dir)
	}
	return nil
}

// ErrStepsTooFew is wrapped by Resume's error when the number of steps asked for does not
// exceed the step the run is at.
var ErrStepsTooFew = errors.New("steps must exceed the step the run is at")

// Resume loads the newest complete checkpoint under path (a run directory or a checkpoint)
// and returns a trainer positioned after it on device, with the run state (restore the
// data source from State.Data). The state is validated as settings given on a command line
// are. steps, when positive, replaces the run's total number of steps and must exceed the
// step the run is at (else the error wraps ErrStepsTooFew); the learning-rate schedule is
// kept as it was (its warmup and its cosine horizon), so extending a run trains on at the
// rate the schedule gives beyond its old end (see Schedule.LR).
func Resume(path, device string, steps int) (*Trainer, State, string, error) {
	return ResumeRanks(path, device, 1, steps)
}

// ResumeRanks is Resume onto ranks data-parallel executors (NewTrainerRanks), whatever the
// number of ranks that wrote the checkpoint: the global batch, and so the run, is the same.
func ResumeRanks(path, device string, ranks, steps int) (*Trainer, State, string, error) {
	var st State
	if err := CheckRanks(device, ranks); err != nil {
		return nil, st, "", err
	}
	dir, err := checkpoints.Resolve(path)
	if err != nil {
		return nil, st, "", err
	}
	statePath := filepath.Join(dir, checkpoints.StateFile)
	if err := checkpoints.ReadJSON(statePath, &st, 1<<20); err != nil {
		return nil, st, dir, err
	}
	if err := st.validate(); err != nil {
		return nil, st, dir, fmt.Errorf("%s: %w", statePath, err)
	}
	if steps > 0 && steps <= st.Step {
		return nil, st, dir, fmt.Errorf("the run in %s is at step %d, so %d steps would train none (steps counts every step of the run, not steps to add): %w", path, st.Step, steps, ErrStepsTooFew)
	}
	cfg, params, err := models.LoadModel(dir)
	if err != nil {
		return nil, st, dir, err
	}
	s := st.Settings
	if steps > 0 {
		s.Steps = steps
	}
	t, err := newTrainer(cfg, params, s, device)
	if err != nil {
		return nil, st, dir, err
	}
	optPath := filepath.Join(dir, checkpoints.OptimizerFile)
	ts, _, err := checkpoints.ReadSafetensors(optPath)
	if err != nil {
		return nil, st, dir, err
	}
	byName := map[string]checkpoints.Tensor{}
	for _, x := range ts {
		byName[x.Name] = x
	}
	if len(byName) != 2*len(t.names) {
		return nil, st, dir, fmt.Errorf("%s: %d tensors, want m and v for %d parameters", optPath, len(byName), len(t.names))
	}
	for i, name := range t.names {
		m, okM := byName["m."+name]
		v, okV := byName["v."+name]
		if !okM || !okV || len(m.Data) != len(t.Opt.M[i]) || len(v.Data) != len(t.Opt.V[i]) {
			return nil, st, dir, fmt.Errorf("%s: moments of %s are missing or mis-sized", optPath, name)
		}
		copy(t.Opt.M[i], m.Data)
		copy(t.Opt.V[i], v.Data)
	}
	t.Step, t.Opt.Steps, t.DropoutStep, t.ranks = st.Step, st.OptSteps, st.DropoutStep, ranks
	if err := t.start(); err != nil {
		return nil, st, dir, err
	}
	return t, st, dir, nil
}

// validate checks a loaded run state.
func (st State) validate() error {
	if err := st.Settings.Validate(); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	switch {
	case st.Step < 0 || st.Step > st.Settings.Steps:
		return fmt.Errorf("step %d is outside 0..%d (the run's steps)", st.Step, st.Settings.Steps)
	case st.OptSteps < 0 || st.OptSteps > st.Step:
		return fmt.Errorf("optimizer_steps %d is outside 0..%d (the step)", st.OptSteps, st.Step)
	case st.Data.Epoch < 0 || st.Data.Pos < 0:
		return fmt.Errorf("data position epoch %d, pos %d must not be negative", st.Data.Epoch, st.Data.Pos)
	case !(st.Elapsed >= 0) || math.IsInf(st.Elapsed, 0):
		return fmt.Errorf("elapsed_s %g must be a finite number ≥ 0", st.Elapsed)
	}
	return nil
}

// reload pushes host parameters and moments to the executor again (after UseParams edits them).
func (t *Trainer) reload() error {
	if err := t.exec.Close(); err != nil {
		return err
	}
	return t.start()
}

// SummarizeLog is the Summary of every step in a run's train.jsonl, however many runs
// (an interrupted one and its resumptions) wrote them: the steps, their tokens and training
// time (each step's tokens over its tokens/s), the last loss and validation loss, the peak
// GPU memory. Checkpoint is left empty. Steps logged before the log recorded tokens count
// no tokens and no time.
func SummarizeLog(path string) (Summary, error) {
	entries, err := ReadLog(path)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{FinalLoss: math.NaN(), ValLoss: math.NaN()}
	for _, e := range entries {
		if e.ValLoss != nil {
			sum.ValLoss = *e.ValLoss
		}
		if e.PeakGPUBytes != nil {
			sum.PeakGPUBytes = max(sum.PeakGPUBytes, *e.PeakGPUBytes)
		}
		if e.LR == nil { // a validation line
			continue
		}
		sum.Steps++
		sum.FinalLoss = math.NaN()
		if e.Loss != nil {
			sum.FinalLoss = *e.Loss
		}
		if e.TokensPS != nil && *e.TokensPS > 0 {
			sum.Tokens += e.Tokens
			sum.Seconds += float64(e.Tokens) / *e.TokensPS
		}
	}
	return sum, nil
}

// ReadLog reads a run's train.jsonl.
func ReadLog(path string) ([]LogEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []LogEntry
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e LogEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}
