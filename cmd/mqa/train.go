package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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
	fs.StringVar(&m.Activation, "activation", "", "feed-forward activation: relu, gelu or swiglu (default: the preset's)")
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
type optFlags struct {
	steps, warmup, accum, evalEvery, ckptEvery, keep, evalBatches int
	lr, minLR, clip, wd, smoothing                                float64
	schedule                                                      string
	seed                                                          uint64
	skipNonFinite                                                 bool
}

func (o *optFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&o.steps, "steps", 0, "training steps (default: the preset's)")
	fs.IntVar(&o.warmup, "warmup", -1, "warmup steps (default: a tenth of the steps, at most 400)")
	fs.IntVar(&o.accum, "accum", 1, "micro-batches per update (gradient accumulation)")
	fs.Float64Var(&o.lr, "lr", 0, "peak learning rate (default: the preset's)")
	fs.Float64Var(&o.minLR, "min-lr", 0, "floor of the learning rate")
	fs.StringVar(&o.schedule, "schedule", train.ScheduleInvSqrt, "after warmup: invsqrt, cosine or constant")
	fs.Float64Var(&o.clip, "clip", 1, "global gradient-norm clipping (0: none)")
	fs.Float64Var(&o.wd, "wd", 0.01, "AdamW weight decay (matrices only)")
	fs.Float64Var(&o.smoothing, "smoothing", 0.1, "label smoothing")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed (weights, data order, dropout)")
	fs.IntVar(&o.evalEvery, "eval-every", 0, "validate every N steps (default: 10 times a run)")
	fs.IntVar(&o.ckptEvery, "ckpt-every", 0, "checkpoint every N steps (default: 10 times a run)")
	fs.IntVar(&o.keep, "keep", 3, "checkpoints kept besides the best (0: all)")
	fs.IntVar(&o.evalBatches, "eval-batches", 16, "validation batches used during training, for the log and the best checkpoint (0: all); the final validation uses all")
	fs.BoolVar(&o.skipNonFinite, "skip-nonfinite", false, "skip updates with a NaN/Inf loss or gradient instead of stopping")
}

// checkRuntime rejects negative values of the flags that only say how often to validate
// and checkpoint, and how much to keep (the flags a resumed run may change).
func (o *optFlags) checkRuntime() error {
	for _, v := range []struct {
		name string
		n    int
	}{{"steps", o.steps}, {"eval-every", o.evalEvery}, {"ckpt-every", o.ckptEvery}, {"keep", o.keep}, {"eval-batches", o.evalBatches}} {
		if v.n < 0 {
			return fmt.Errorf("-%s %d must not be negative: %w", v.name, v.n, errUsage)
		}
	}
	return nil
}

func (o *optFlags) settings(d models.Training) (train.Settings, error) {
	if err := o.checkRuntime(); err != nil {
		return train.Settings{}, err
	}
	steps, lr := o.steps, o.lr
	if steps == 0 {
		steps = d.Steps
	}
	if lr == 0 {
		lr = d.LR
	}
	s := train.DefaultSettings(steps)
	s.Schedule.Kind, s.Schedule.Peak, s.Schedule.Min = o.schedule, lr, o.minLR
	if o.warmup >= 0 {
		s.Schedule.Warmup = o.warmup
	}
	s.Clip, s.WeightDecay, s.LabelSmoothing, s.Accum, s.Seed, s.SkipNonFinite = o.clip, o.wd, o.smoothing, o.accum, o.seed, o.skipNonFinite
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%v: %w", err, errUsage)
	}
	if o.evalEvery == 0 {
		o.evalEvery = max(1, steps/10)
	}
	if o.ckptEvery == 0 {
		o.ckptEvery = max(1, steps/10)
	}
	return s, nil
}

// dataFlags are the data flags.
type dataFlags struct {
	corpus, trainPath, validPath, testPath, tokPath string
	vocab, seqLen, batch, maxTokens, maxLen         int
	separateVocab                                   bool
}

func (f *dataFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.corpus, "corpus", "", "embedded corpus: lm-en, bible.en-es or lohelp.en-de (default: lm-en for lm, bible.en-es for translate)")
	fs.StringVar(&f.trainPath, "train", "", "training file (text: a document a line; TSV: source<TAB>target, or SRC,TGT line-aligned files; gzip allowed) instead of the corpus")
	fs.StringVar(&f.validPath, "valid", "", "validation file instead of the corpus's")
	fs.StringVar(&f.testPath, "test", "", "test file instead of the corpus's")
	fs.StringVar(&f.tokPath, "tokenizer", "", "a tokenizer JSON to use instead of training one")
	fs.IntVar(&f.vocab, "vocab", 0, "BPE vocabulary size (default: the preset's)")
	fs.BoolVar(&f.separateVocab, "separate-vocab", false, "translation: separate source and target vocabularies")
	fs.IntVar(&f.seqLen, "seq", 0, "LM window length (default: the preset's)")
	fs.IntVar(&f.batch, "batch", 0, "LM windows per batch (default: the preset's)")
	fs.IntVar(&f.maxTokens, "max-tokens", 0, "translation: padded tokens per batch (default: the preset's)")
	fs.IntVar(&f.maxLen, "max-len", 0, "translation: longest source or target kept, in tokens (default: the preset's)")
}

// validate rejects negative sizes and windows longer than the model's max_len (0 means the
// preset's default).
func (f *dataFlags) validate(maxLen int) error {
	for _, v := range []struct {
		name string
		n    int
	}{{"vocab", f.vocab}, {"seq", f.seqLen}, {"batch", f.batch}, {"max-tokens", f.maxTokens}, {"max-len", f.maxLen}} {
		if v.n < 0 {
			return fmt.Errorf("-%s %d must not be negative: %w", v.name, v.n, errUsage)
		}
	}
	if f.vocab != 0 {
		if err := data.CheckVocabSize(f.vocab); err != nil {
			return fmt.Errorf("-vocab: %v: %w", err, errUsage)
		}
	}
	if f.seqLen > maxLen || f.maxLen > maxLen {
		return fmt.Errorf("-seq %d / -max-len %d: the model takes at most %d tokens (max_len): %w", f.seqLen, f.maxLen, maxLen, errUsage)
	}
	return nil
}

func (f *dataFlags) spec(task string, d models.Training, o optFlags) *rundata.Data {
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	return &rundata.Data{Settings: rundata.Settings{Task: task, Corpus: f.corpus, Train: f.trainPath, Valid: f.validPath, Test: f.testPath,
		Vocab: pick(f.vocab, d.Vocab), SeqLen: pick(f.seqLen, d.SeqLen), Batch: pick(f.batch, d.Batch),
		MaxTokens: pick(f.maxTokens, d.MaxTokens), MaxLen: pick(f.maxLen, d.MaxLen), Seed: o.seed,
		EvalEvery: o.evalEvery, CkptEvery: o.ckptEvery, Keep: o.keep, EvalBatches: o.evalBatches},
		TokenizerPath: f.tokPath, SeparateVocab: f.separateVocab}
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
	ctx, stop := signalContext()
	defer stop()
	if *resume != "" {
		return prof.around(func() error { return resumeTraining(ctx, *resume, *device, ranks, of, setFlags(fs)) })
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

// signalContext is cancelled by SIGINT or SIGTERM; training then saves and stops.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// resumeTraining continues the run in dir (runner.Resume). Only the flags in resumeFlags may
// be given; -steps, when given, is the run's new total (an extension keeps the schedule, see
// runner.ScheduleNote), and the other allowed flags replace the run's settings from now on.
// A finished run without a larger -steps is left as it is, with a message.
func resumeTraining(ctx context.Context, dir, device string, ranks int, of optFlags, set map[string]bool) error {
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
	j, err := runner.Resume(runner.ResumeSpec{Dir: dir, Device: device, Ranks: ranks, Steps: of.steps, Log: os.Stderr,
		Override: func(d *rundata.Settings) {
			for _, o := range []struct {
				flag string
				dst  *int
				v    int
			}{{"eval-every", &d.EvalEvery, of.evalEvery}, {"ckpt-every", &d.CkptEvery, of.ckptEvery}, {"keep", &d.Keep, of.keep}, {"eval-batches", &d.EvalBatches, of.evalBatches}} {
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
