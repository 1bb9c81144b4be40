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

	"github.com/schollz/progressbar/v3"

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

// Checkpoint file names besides the model's (models.ConfigFile, models.WeightsFile).
const (
	OptimizerFile = "optimizer.safetensors"
	StateFile     = "state.json"
	LogFile       = "train.jsonl"
)

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
	Progress        io.Writer // where the progress bar goes; nil for none
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
	logf, err := openLog(filepath.Join(o.Out, LogFile), t.Step)
	if err != nil {
		return sum, err
	}
	defer logf.Close()
	enc := json.NewEncoder(logf)

	var bar *progressbar.ProgressBar
	if o.Progress != nil {
		bar = progressbar.NewOptions(t.Settings.Steps,
			progressbar.OptionSetWriter(o.Progress), progressbar.OptionSetDescription(o.Label),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("steps"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish())
		_ = bar.Set(t.Step)
	}
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
		if err := enc.Encode(LogEntry{Step: st.Step, Loss: finite(st.Loss), LR: &st.LR, GradNorm: finite(st.GradNorm), TokensPS: &tps,
			PeakGPUBytes: peak(), Skipped: st.Skipped, ElapsedS: elapsed(), Timestamp: now()}); err != nil {
			return sum, fmt.Errorf("writing %s: %w", LogFile, err)
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("%s loss %.3f", o.Label, st.Loss))
			_ = bar.Set(t.Step)
		}
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
	if bar != nil {
		_ = bar.Finish()
	}
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
func openLog(path string, step int) (*os.File, error) {
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
	if err := checkpoints.SaveSafetensors(filepath.Join(dir, OptimizerFile), ts, nil); err != nil {
		return err
	}
	if err := checkpoints.WriteJSON(filepath.Join(dir, StateFile), st); err != nil {
		return err
	}
	if extra != nil {
		return extra(dir)
	}
	return nil
}

// Resume loads the newest complete checkpoint under path (a run directory or a checkpoint)
// and returns a trainer positioned after it on device, with the run state (restore the
// data source from State.Data). steps, when positive, replaces the number of steps to train.
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
	if err := checkpoints.ReadJSON(filepath.Join(dir, StateFile), &st, 1<<20); err != nil {
		return nil, st, dir, err
	}
	cfg, params, err := models.LoadModel(dir)
	if err != nil {
		return nil, st, dir, err
	}
	s := st.Settings
	if steps > 0 {
		s.Steps = steps
		if s.Schedule.Total == st.Settings.Steps {
			s.Schedule.Total = steps
		}
	}
	t, err := newTrainer(cfg, params, s, device)
	if err != nil {
		return nil, st, dir, err
	}
	optPath := filepath.Join(dir, OptimizerFile)
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

// reload pushes host parameters and moments to the executor again (after UseParams edits them).
func (t *Trainer) reload() error {
	if err := t.exec.Close(); err != nil {
		return err
	}
	return t.start()
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
