package study

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mqa/checkpoints"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// trainRun trains the model of run directory out, steps steps of configuration want: a new
// trainer from fresh, which also puts the data at the run's first batch. With -resume, a run
// directory that already holds checkpoints is continued instead: a finished model is not
// trained again, an interrupted one trains on from its newest checkpoint exactly as it would
// have gone on. It returns the trainer that holds the model (the caller closes it) and the
// summary of the training (when resumed, of all its steps, from its log).
func (r *Spec) trainRun(ctx context.Context, d *rundata.Data, out, label string, want models.Config, steps int,
	fresh func() (*train.Trainer, error)) (*train.Trainer, train.Summary, error) {
	if _, err := os.Stat(out); r.Resume && err == nil {
		// What a hard stop left (a checkpoint half written or set aside) goes first, as for
		// mqa train -resume.
		removed, err := checkpoints.Manager{Root: out}.Clean()
		if err != nil {
			return nil, train.Summary{}, fmt.Errorf("-resume: %w", err)
		}
		if len(removed) > 0 {
			r.logf("[compare] removed what an interrupted run left in %s: %s\n", out, strings.Join(removed, ", "))
		}
		if _, err := (checkpoints.Manager{Root: out}).Latest(); err == nil {
			return r.resumeRun(ctx, d, out, label, want, steps)
		}
	}
	tr, err := fresh()
	if err != nil {
		return nil, train.Summary{}, err
	}
	sum, err := tr.Run(ctx, d.TrainSource, d.RunOptions(out, label))
	if err != nil {
		tr.Close()
		return nil, sum, r.interrupted(out, err)
	}
	return tr, sum, nil
}

// resumeRun is trainRun for a run directory that holds checkpoints (-resume).
func (r *Spec) resumeRun(ctx context.Context, d *rundata.Data, out, label string, want models.Config, steps int) (*train.Trainer, train.Summary, error) {
	tr, st, ckpt, err := train.ResumeRanks(out, r.Device, r.Ranks, 0)
	if err != nil {
		return nil, train.Summary{}, fmt.Errorf("-resume: %w", err)
	}
	var prev rundata.Settings
	runPath := filepath.Join(ckpt, checkpoints.RunFile)
	if err := checkpoints.ReadJSON(runPath, &prev, 1<<20); err != nil {
		tr.Close()
		return nil, train.Summary{}, fmt.Errorf("-resume: %w", err)
	}
	if tr.Cfg != want || tr.Settings.Steps != steps || !rundata.SameData(prev, d.Settings) {
		tr.Close()
		return nil, train.Summary{}, fmt.Errorf("-resume: %s holds a %s model of %d steps (data: %s), not the %s model of %d steps on the data this comparison trains: give the interrupted comparison's flags, or another -out",
			ckpt, tr.Cfg.AttentionName(), tr.Settings.Steps, runPath, want.AttentionName(), steps)
	}
	if tr.Step < steps {
		r.logf("[compare] resuming %s at step %d of %d\n", ckpt, tr.Step, steps)
		if err := d.TrainSource.Restore(st.Data); err != nil {
			tr.Close()
			return nil, train.Summary{}, fmt.Errorf("restoring the data position of %s: %w", ckpt, err)
		}
		opt := d.RunOptions(out, label)
		opt.Elapsed = time.Duration(st.Elapsed * float64(time.Second))
		if _, err := tr.Run(ctx, d.TrainSource, opt); err != nil {
			tr.Close()
			return nil, train.Summary{}, r.interrupted(out, err)
		}
	} else {
		r.logf("[compare] %s finished its %d steps before: scoring it, not training it again\n", out, steps)
	}
	sum, err := train.SummarizeLog(filepath.Join(out, checkpoints.LogFile))
	if err == nil {
		sum.Checkpoint, err = checkpoints.Manager{Root: out}.Latest()
	}
	if err != nil {
		tr.Close()
		return nil, sum, err
	}
	return tr, sum, nil
}

// interrupted says how to go on from an interrupted training of run directory out (and
// passes other errors on).
func (r *Spec) interrupted(out string, err error) error {
	if errors.Is(err, train.ErrInterrupted) {
		return r.resumable("interrupted; the checkpoint is in " + out)
	}
	return err
}

// stopped is the error of a comparison stopped while it scored or timed the model trained in
// out: its training is complete, so -resume scores it again.
func (r *Spec) stopped(out string) error {
	return r.resumable("interrupted while scoring " + out + ", which is trained")
}

// resumable is the error of a stopped comparison: what happened, and how to go on.
func (r *Spec) resumable(what string) error {
	return fmt.Errorf("%s; the same command with -resume -out %s continues the comparison: %w", what, r.Out, rundata.ErrInterrupted)
}
