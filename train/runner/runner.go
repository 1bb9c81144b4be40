// Package runner runs a training job in a run directory: a new run (New), a run resumed
// from its newest checkpoint (Resume) and an uptraining, a checkpoint with pooled K/V heads
// trained further (Uptrain). Each prepares a Job (the directory locked, the data loaded, the
// trainer built) whose Train runs the training loop; mqa train and mqa uptrain fill the
// specs from their flags and check those first.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"time"

	"mqa/checkpoints"
	"mqa/infer"
	"mqa/layers/blas"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// Job is a prepared training run. Close it when done.
type Job struct {
	tr      *train.Trainer
	data    *rundata.Data
	out     string
	elapsed float64 // seconds the run has trained before, for a resumed run
	lock    *checkpoints.RunLock
	log     io.Writer
}

// Spec is a new training run.
type Spec struct {
	Out   string // the run directory
	Force bool   // train into a directory that holds an earlier run (see openFresh)
	// Data holds the data settings; New identifies and loads the files.
	Data *rundata.Data
	// Model makes the model's configuration once the vocabulary sizes are known.
	Model    func(vocab, srcVocab int) (models.Config, error)
	Settings train.Settings
	Device   string
	Ranks    int
	Preset   string    // named in the log
	Log      io.Writer // the run's messages
}

// New prepares a new run: it opens the run directory (openFresh), reads the data, trains
// or reads the tokenizer, makes the model and its trainer, and says what it will train.
func New(s Spec) (*Job, error) {
	lock, err := openFresh(s.Out, s.Force, s.Log)
	if err != nil {
		return nil, err
	}
	j := &Job{data: s.Data, out: s.Out, lock: lock, log: s.Log}
	if err := j.prepare(s); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

func (j *Job) prepare(s Spec) error {
	d := s.Data
	if err := d.IdentifyFiles(); err != nil {
		return err
	}
	if err := d.Load(); err != nil {
		return err
	}
	cfg, err := s.Model(d.Tok.VocabSize(), d.SrcVocab())
	if err != nil {
		return err
	}
	if j.tr, err = train.NewTrainerRanks(cfg, nil, s.Settings, s.Device, s.Ranks); err != nil {
		return err
	}
	fmt.Fprintf(s.Log, "mqa train: %s %s, %s attention (%d K/V heads), d_ff %d, %d parameters, %d steps, vocab %d → %s\n",
		cfg.Task, s.Preset, cfg.AttentionName(), cfg.KVHeads, cfg.FFDim, cfg.ParamCount(), s.Settings.Steps, cfg.Vocab, s.Out)
	if d.Dropped != "" {
		fmt.Fprintln(s.Log, "mqa train:", d.Dropped)
	}
	printBLAS(s.Log, s.Device)
	return nil
}

// ResumeSpec is a run to continue from its newest complete checkpoint.
type ResumeSpec struct {
	Dir    string // the run directory
	Device string
	Ranks  int
	// Steps > 0 is the run's new total (see train.ResumeRanks); 0 keeps the run's.
	Steps int
	// Override, when set, changes the run's saved data settings (how often it validates
	// and checkpoints, how many checkpoints it keeps) from now on.
	Override func(*rundata.Settings)
	Quiet    bool // no progress bar (the saved settings do not hold it)
	Log      io.Writer
}

// stepsError is train.ErrStepsTooFew told for the run at hand.
type stepsError struct{ msg string }

func (e stepsError) Error() string { return e.msg }
func (e stepsError) Unwrap() error { return train.ErrStepsTooFew }

// Resume prepares the run in s.Dir to go on: it locks the directory, cleans what an
// interruption left, and restores the trainer, the data and the data position of the newest
// checkpoint. A finished run that s.Steps does not extend gives a nil Job (and says so on
// the log). Steps no more than the run's step give an error that is train.ErrStepsTooFew.
func Resume(s ResumeSpec) (*Job, error) {
	if _, err := (checkpoints.Manager{Root: s.Dir}).Latest(); err != nil {
		return nil, fmt.Errorf("train: cannot resume %s: %w", s.Dir, err)
	}
	lock, err := checkpoints.LockRun(s.Dir)
	if err != nil {
		return nil, err
	}
	j := &Job{out: s.Dir, lock: lock, log: s.Log}
	done, err := j.restore(s)
	if err != nil || done {
		j.Close()
		return nil, err
	}
	return j, nil
}

// restore is Resume once the run directory is locked; done reports a finished run.
func (j *Job) restore(s ResumeSpec) (done bool, err error) {
	if err := clean(s.Dir, s.Log); err != nil {
		return false, err
	}
	tr, st, ckpt, err := train.ResumeRanks(s.Dir, s.Device, s.Ranks, s.Steps)
	if errors.Is(err, train.ErrStepsTooFew) {
		return false, stepsError{fmt.Sprintf("-steps %d: the run in %s is at step %d; -steps is the run's total, not steps to add, so give more than %d", s.Steps, s.Dir, st.Step, st.Step)}
	}
	if err != nil {
		return false, err
	}
	j.tr, j.elapsed = tr, st.Elapsed
	if tr.Step >= tr.Settings.Steps {
		fmt.Fprintf(s.Log, "mqa train: the run in %s has already finished all its %d steps; nothing to do (to train it further give -steps N with N > %d)\n", s.Dir, tr.Step, tr.Step)
		return true, nil
	}
	d := &rundata.Data{Quiet: s.Quiet}
	runPath := filepath.Join(ckpt, checkpoints.RunFile)
	if err := checkpoints.ReadJSON(runPath, &d.Settings, 1<<20); err != nil {
		return false, err
	}
	if err := d.CheckBatchSize(); err != nil {
		return false, fmt.Errorf("%s: %w", runPath, err)
	}
	if s.Override != nil {
		s.Override(&d.Settings)
	}
	if err := d.CheckFiles(d.Files()...); err != nil {
		return false, err
	}
	if d.Tok, d.SrcTok, err = infer.LoadTokenizers(ckpt); err != nil {
		return false, err
	}
	if err := d.Load(); err != nil {
		return false, err
	}
	if err := d.TrainSource.Restore(st.Data); err != nil {
		return false, fmt.Errorf("restoring the data position: %w", err)
	}
	j.data = d
	fmt.Fprintf(s.Log, "mqa train: resuming %s from %s at step %d of %d\n", tr.Cfg.Task, ckpt, tr.Step, tr.Settings.Steps)
	if tr.Settings.Steps != st.Settings.Steps {
		fmt.Fprintf(s.Log, "mqa train: extending the run from %d to %d steps; %s\n", st.Settings.Steps, tr.Settings.Steps, scheduleNote(tr.Settings.Schedule, st.Settings.Steps))
	}
	printBLAS(s.Log, s.Device)
	return false, nil
}

// Close releases the trainer and the run directory's lock.
func (j *Job) Close() {
	if j.tr != nil {
		j.tr.Close()
	}
	_ = j.lock.Unlock()
}

// Train runs the training loop and reports the outcome on the log. A cancelled ctx stops
// the run after a checkpoint and gives rundata.ErrInterrupted, having said how to resume.
func (j *Job) Train(ctx context.Context) error {
	tr, d, out := j.tr, j.data, j.out
	opt := d.RunOptions(out, "train")
	opt.Elapsed = time.Duration(j.elapsed * float64(time.Second))
	if tr.Ranks() > 1 {
		fmt.Fprintf(j.log, "mqa train: data-parallel on %d ranks; each update's global batch is split among them\n", tr.Ranks())
	}
	if ss, ok := d.TrainSource.(train.ShapeSource); ok {
		shapes := ss.Shapes()
		fmt.Fprintf(j.log, "mqa train: %d batch shapes (batch×source×target): %s\n", len(shapes), models.FormatShapes(shapes))
	}
	sum, err := tr.Run(ctx, d.TrainSource, opt)
	switch {
	case errors.Is(err, train.ErrInterrupted):
		fmt.Fprintf(j.log, "mqa train: interrupted at step %d; checkpoint %s\nresume with: mqa train -resume %s\n", tr.Step, sum.Checkpoint, out)
		return rundata.ErrInterrupted
	case err != nil:
		if last, lerr := (checkpoints.Manager{Root: out}).Latest(); lerr == nil {
			return fmt.Errorf("%w (last good checkpoint: %s)", err, last)
		}
		return err
	}
	fmt.Fprintf(j.log, "mqa train: %d steps, final loss %.4f, validation NLL %.4f (ppl %.2f), %.0f tokens/s; checkpoint %s\n",
		sum.Steps, sum.FinalLoss, sum.ValLoss, math.Exp(sum.ValLoss), float64(sum.Tokens)/sum.Seconds, sum.Checkpoint)
	if sum.PeakGPUBytes > 0 {
		fmt.Fprintf(j.log, "mqa train: peak GPU memory %s\n", train.GiB(sum.PeakGPUBytes))
	}
	return nil
}

// printBLAS says which BLAS a CPU run's matrix products use.
func printBLAS(log io.Writer, device string) {
	if device == "cpu" {
		fmt.Fprintln(log, "mqa train: matrix products on", blas.Name())
	}
}

// scheduleNote says what the kept schedule s of a run of oldSteps steps does after them.
func scheduleNote(s train.Schedule, oldSteps int) string {
	kept := fmt.Sprintf("the learning-rate schedule is kept (warmup %d steps, peak %g)", s.Warmup, s.Peak)
	switch s.Kind {
	case train.ScheduleCosine:
		note := fmt.Sprintf("%s: its cosine decay ends at step %d, so every later step trains at its floor %g", kept, s.Total, s.Min)
		if s.Min == 0 {
			note += ", which leaves the weights unchanged (the run had -min-lr 0)"
		}
		return note
	case train.ScheduleInvSqrt:
		return fmt.Sprintf("%s: its inverse-square-root decay goes on past step %d as it would have", kept, oldSteps)
	}
	return fmt.Sprintf("%s: the learning rate stays %g", kept, s.Peak)
}
