package runner

import (
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// Options are the choices of a run that replace the preset's training defaults (mqa train's
// and mqa uptrain's flags fill them). Zero Steps, LR, EvalEvery and CkptEvery, and a
// negative Warmup, take the defaults.
type Options struct {
	Steps, Warmup, Accum                    int
	LR, MinLR, Clip, WeightDecay, Smoothing float64
	Schedule                                string
	Seed                                    uint64
	SkipNonFinite                           bool
	EvalEvery, CkptEvery, Keep, EvalBatches int
}

// Settings returns the validated training settings of o over the preset's defaults d:
// d.Steps and d.LR unless given, the warmup of train.DefaultSettings unless given. Then it
// sets EvalEvery and CkptEvery, when zero, to a tenth of the steps (at least 1).
func (o *Options) Settings(d models.Training) (train.Settings, error) {
	steps, lr := o.Steps, o.LR
	if steps == 0 {
		steps = d.Steps
	}
	if lr == 0 {
		lr = d.LR
	}
	s := train.DefaultSettings(steps)
	s.Schedule.Kind, s.Schedule.Peak, s.Schedule.Min = o.Schedule, lr, o.MinLR
	if o.Warmup >= 0 {
		s.Schedule.Warmup = o.Warmup
	}
	s.Clip, s.WeightDecay, s.LabelSmoothing, s.Accum, s.Seed, s.SkipNonFinite = o.Clip, o.WeightDecay, o.Smoothing, o.Accum, o.Seed, o.SkipNonFinite
	if err := s.Validate(); err != nil {
		return s, err
	}
	if o.EvalEvery == 0 {
		o.EvalEvery = max(1, steps/10)
	}
	if o.CkptEvery == 0 {
		o.CkptEvery = max(1, steps/10)
	}
	return s, nil
}

// Data returns the data settings of a run: those given, whose zero sizes (Vocab, SeqLen,
// Batch, MaxTokens, MaxLen) take the preset's defaults d, with o's seed, validation and
// checkpointing.
func (o Options) Data(given rundata.Settings, d models.Training) rundata.Settings {
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	s := given
	s.Vocab, s.SeqLen, s.Batch = pick(s.Vocab, d.Vocab), pick(s.SeqLen, d.SeqLen), pick(s.Batch, d.Batch)
	s.MaxTokens, s.MaxLen = pick(s.MaxTokens, d.MaxTokens), pick(s.MaxLen, d.MaxLen)
	s.Seed, s.EvalEvery, s.CkptEvery, s.Keep, s.EvalBatches = o.Seed, o.EvalEvery, o.CkptEvery, o.Keep, o.EvalBatches
	return s
}
