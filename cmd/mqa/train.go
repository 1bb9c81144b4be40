package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
	"mqa/train/runner"
)

func init() {
	commands["train"] = command{"train a language or translation model", runTrain}
}

// modelFlags are the flags that shape a model: a models.Spec, or a config file.
type modelFlags struct {
	models.Spec
	configPath string
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.Preset, "preset", "tiny", "model size: tiny, small, base or paper")
	fs.StringVar(&m.Attention, "attn", "mha", "attention: mha, mqa or gqa:G (G key/value heads)")
	fs.StringVar(&m.configPath, "config", "", "a model config JSON file (replaces -preset)")
	fs.StringVar(&m.Activation, "activation", "", "feed-forward activation: relu, gelu, gelu_tanh or swiglu (default: the preset's)")
	fs.StringVar(&m.Norm, "norm", "", "layer or rms (default: the preset's)")
	fs.StringVar(&m.Positions, "positions", "", "sinusoidal, learned or rope (default: the preset's)")
	fs.Float64Var(&m.Dropout, "dropout", 0, "dropout probability")
	fs.IntVar(&m.Window, "window", 0, "local self-attention window (0: full)")
	fs.BoolVar(&m.Unmatched, "no-match", false, "do not widen d_ff of MQA/GQA to match the MHA parameter count")
	fs.BoolVar(&m.Bias, "bias", false, "biases in linear layers")
	fs.BoolVar(&m.Untied, "untied", false, "an output projection of its own instead of the tied embedding")
}

// config builds the model configuration for a task and vocabulary.
func (m *modelFlags) config(task string, vocab, srcVocab int) (models.Config, error) {
	var cfg models.Config
	if m.configPath != "" {
		if err := checkpoints.ReadJSON(m.configPath, &cfg, 1<<20); err != nil {
			return cfg, err
		}
		if err := cfg.Validate(); err != nil {
			return cfg, fmt.Errorf("%s: %w", m.configPath, err)
		}
		if cfg.Task != task {
			return cfg, fmt.Errorf("%s is a %s config, but -task is %s: %w", m.configPath, cfg.Task, task, errUsage)
		}
		return cfg, nil
	}
	s := m.Spec
	s.Task, s.Vocab, s.SrcVocab = task, vocab, srcVocab
	cfg, err := s.Config()
	if err != nil {
		return cfg, fmt.Errorf("%v: %w", err, errUsage)
	}
	return cfg, nil
}

// optFlags are the optimisation flags.
type optFlags struct{ runner.Options }

func (o *optFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&o.Steps, "steps", 0, "training steps (default: the preset's)")
	fs.IntVar(&o.Warmup, "warmup", -1, "warmup steps (default: a tenth of the steps, at most 400)")
	fs.IntVar(&o.Accum, "accum", 1, "micro-batches per update (gradient accumulation)")
	fs.Float64Var(&o.LR, "lr", 0, "peak learning rate (default: the preset's)")
	fs.Float64Var(&o.MinLR, "min-lr", 0, "floor of the learning rate")
	fs.StringVar(&o.Schedule, "schedule", train.ScheduleInvSqrt, "after warmup: invsqrt, cosine or constant")
	fs.Float64Var(&o.Clip, "clip", 1, "global gradient-norm clipping (0: none)")
	fs.Float64Var(&o.WeightDecay, "wd", 0.01, "AdamW weight decay (matrices only)")
	fs.Float64Var(&o.Smoothing, "smoothing", 0.1, "label smoothing")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed (weights, data order, dropout)")
	fs.IntVar(&o.EvalEvery, "eval-every", 0, "validate every N steps (default: 10 times a run)")
	fs.IntVar(&o.CkptEvery, "ckpt-every", 0, "checkpoint every N steps (default: 10 times a run)")
	fs.IntVar(&o.Keep, "keep", 3, "checkpoints kept besides the best (0: all)")
	fs.IntVar(&o.EvalBatches, "eval-batches", 16, "validation batches used during training, for the log and the best checkpoint (0: all); the final validation uses all")
	fs.BoolVar(&o.SkipNonFinite, "skip-nonfinite", false, "skip updates with a NaN/Inf loss or gradient instead of stopping")
}

// checkRuntime rejects negative values of the flags that only say how often to validate
// and checkpoint, and how much to keep (the flags a resumed run may change).
func (o *optFlags) checkRuntime() error {
	for _, v := range []struct {
		name string
		n    int
	}{{"steps", o.Steps}, {"eval-every", o.EvalEvery}, {"ckpt-every", o.CkptEvery}, {"keep", o.Keep}, {"eval-batches", o.EvalBatches}} {
		if v.n < 0 {
			return fmt.Errorf("-%s %d must not be negative: %w", v.name, v.n, errUsage)
		}
	}
	return nil
}

// settings checks the flags and returns the training settings (runner.Options.Settings).
func (o *optFlags) settings(d models.Training) (train.Settings, error) {
	if err := o.checkRuntime(); err != nil {
		return train.Settings{}, err
	}
	s, err := o.Options.Settings(d)
	if err != nil {
		return s, fmt.Errorf("%v: %w", err, errUsage)
	}
	return s, nil
}

// dataFlags are the data flags: where the data come from and their sizes (0: the preset's).
type dataFlags struct {
	rundata.Settings
	tokPath       string
	separateVocab bool
}

func (f *dataFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.Corpus, "corpus", "", "embedded corpus: lm-en, bible.en-es or lohelp.en-de (default: lm-en for lm, bible.en-es for translate)")
	fs.StringVar(&f.Train, "train", "", "training file (text: a document a line; TSV: source<TAB>target, or SRC,TGT line-aligned files; gzip allowed) instead of the corpus")
	fs.StringVar(&f.Valid, "valid", "", "validation file instead of the corpus's")
	fs.StringVar(&f.Test, "test", "", "test file instead of the corpus's")
	fs.StringVar(&f.tokPath, "tokenizer", "", "a tokenizer JSON to use instead of training one")
	fs.IntVar(&f.Vocab, "vocab", 0, "BPE vocabulary size (default: the preset's)")
	fs.BoolVar(&f.separateVocab, "separate-vocab", false, "translation: separate source and target vocabularies")
	fs.IntVar(&f.SeqLen, "seq", 0, "LM window length (default: the preset's)")
	fs.IntVar(&f.Batch, "batch", 0, "LM windows per batch (default: the preset's)")
	fs.IntVar(&f.MaxTokens, "max-tokens", 0, "translation: padded tokens per batch (default: the preset's)")
	fs.IntVar(&f.MaxLen, "max-len", 0, "translation: longest source or target kept, in tokens (default: the preset's)")
}

// validate rejects negative sizes and windows longer than the model's max_len (0 means the
// preset's default).
func (f *dataFlags) validate(maxLen int) error {
	for _, v := range []struct {
		name string
		n    int
	}{{"vocab", f.Vocab}, {"seq", f.SeqLen}, {"batch", f.Batch}, {"max-tokens", f.MaxTokens}, {"max-len", f.MaxLen}} {
		if v.n < 0 {
			return fmt.Errorf("-%s %d must not be negative: %w", v.name, v.n, errUsage)
		}
	}
	if f.Vocab != 0 {
		if err := data.CheckVocabSize(f.Vocab); err != nil {
			return fmt.Errorf("-vocab: %v: %w", err, errUsage)
		}
	}
	if f.SeqLen > maxLen || f.MaxLen > maxLen {
		return fmt.Errorf("-seq %d / -max-len %d: the model takes at most %d tokens (max_len): %w", f.SeqLen, f.MaxLen, maxLen, errUsage)
	}
	return nil
}

// spec is the run's data: the flags over the preset's defaults d (runner.Options.Data).
func (f *dataFlags) spec(task string, d models.Training, o optFlags) *rundata.Data {
	s := f.Settings
	s.Task = task
	return &rundata.Data{Settings: o.Data(s, d), TokenizerPath: f.tokPath, SeparateVocab: f.separateVocab}
}

func checkTask(task string) error {
	if task != models.TaskLM && task != models.TaskTranslate {
		return fmt.Errorf("unknown task %q (allowed: lm, translate): %w", task, errUsage)
	}
	return nil
}

func runTrain(args []string) error {
	fs := newFlags("train", "[-task lm|translate] [-preset NAME] [-attn mha|mqa|gqa:G] [-steps N] [-out DIR] [flags] | -resume DIR [-steps N]")
	task := fs.String("task", models.TaskLM, "lm or translate")
	out := fs.String("out", "", "run directory for checkpoints and the log (default: runs/train-<time>); it must be empty or new, or the directory of a run that stopped before its first checkpoint")
	force := fs.Bool("force", false, "train into a non-empty -out all the same: an earlier run's checkpoints and log there are deleted, other files are kept")
	device := fs.String("device", "cpu", "cpu or cuda")
	resume := fs.String("resume", "", "continue the run in this directory from its newest complete checkpoint (allowed with it: "+resumeFlagList()+")")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	var mf modelFlags
	var of optFlags
	var df dataFlags
	mf.register(fs)
	of.register(fs)
	df.register(fs)
	gpuMemory := gpuMemoryFlag(fs)
	prof := profileFlags(fs)
	checkRanks := ranksFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := gpuMemory(); err != nil {
		return err
	}
	ranks, err := checkRanks(*device)
	if err != nil {
		return err
	}
	ctx, stop := runner.SignalContext()
	defer stop()
	if *resume != "" {
		return prof.around(func() error { return resumeTraining(ctx, *resume, *device, ranks, *quiet, of, setFlags(fs)) })
	}
	if err := checkTask(*task); err != nil {
		return err
	}
	defaults, ok := models.PresetTraining(mf.Preset)
	if !ok {
		defaults, _ = models.PresetTraining("small")
	}
	s, err := of.settings(defaults)
	if err != nil {
		return err
	}
	// Check the model and data flags before the (slower) data preparation.
	probe, err := mf.config(*task, 300, 300)
	if err != nil {
		return err
	}
	if err := df.validate(probe.MaxLen); err != nil {
		return err
	}
	if err := train.CheckDevice(*device); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("runs", "train-"+time.Now().Format("20060102-150405"))
	}
	d := df.spec(*task, defaults, of)
	d.Quiet = *quiet
	if err := d.CheckBatchSize(); err != nil {
		return fmt.Errorf("train: %v: %w", err, errUsage)
	}
	j, err := runner.New(runner.Spec{Out: *out, Force: *force, Data: d, Settings: s, Device: *device, Ranks: ranks, Preset: mf.Preset, Log: os.Stderr,
		Model: func(vocab, srcVocab int) (models.Config, error) { return mf.config(*task, vocab, srcVocab) }})
	if err != nil {
		return err
	}
	defer j.Close()
	return prof.around(func() error { return j.Train(ctx) })
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// resumeFlags are the flags that may go with -resume: they change how often a run is
// validated and checkpointed, how many checkpoints it keeps, how long it trains and where;
// never its model, data or optimisation, which come from the checkpoint.
var resumeFlags = []string{"resume", "steps", "eval-every", "ckpt-every", "keep", "eval-batches", "device", "gpus", "ranks", "gpu-memory", "cpuprofile", "memprofile", "quiet"}

func resumeFlagList() string {
	return "-" + strings.Join(resumeFlags[1:], ", -")
}

// resumeTraining continues the run in dir (runner.Resume). Only the flags in resumeFlags may
// be given; -steps, when given, is the run's new total (an extension keeps the schedule and
// says what it does), and the other allowed flags replace the run's settings from now on.
// A finished run without a larger -steps is left as it is, with a message.
func resumeTraining(ctx context.Context, dir, device string, ranks int, quiet bool, of optFlags, set map[string]bool) error {
	var refused []string
	for name := range set {
		if !slices.Contains(resumeFlags, name) {
			refused = append(refused, "-"+name)
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		return fmt.Errorf("train: %s cannot go with -resume, which continues a run with the model, data and optimisation settings of its checkpoint (allowed with -resume: %s): %w",
			strings.Join(refused, ", "), resumeFlagList(), errUsage)
	}
	if err := of.checkRuntime(); err != nil {
		return err
	}
	if checkpoints.IsComplete(dir) {
		return fmt.Errorf("train: -resume %s names a checkpoint; resume its run instead: mqa train -resume %s: %w", dir, filepath.Dir(filepath.Clean(dir)), errUsage)
	}
	j, err := runner.Resume(runner.ResumeSpec{Dir: dir, Device: device, Ranks: ranks, Steps: of.Steps, Quiet: quiet, Log: os.Stderr,
		Override: func(d *rundata.Settings) {
			for _, o := range []struct {
				flag string
				dst  *int
				v    int
			}{{"eval-every", &d.EvalEvery, of.EvalEvery}, {"ckpt-every", &d.CkptEvery, of.CkptEvery}, {"keep", &d.Keep, of.Keep}, {"eval-batches", &d.EvalBatches, of.EvalBatches}} {
				if set[o.flag] {
					*o.dst = o.v
				}
			}
		}})
	if errors.Is(err, train.ErrStepsTooFew) {
		return fmt.Errorf("train: %v: %w", err, errUsage)
	}
	if err != nil || j == nil {
		return err
	}
	defer j.Close()
	return j.Train(ctx)
}
