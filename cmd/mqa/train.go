package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/infer"
	"mqa/infer/study"
	"mqa/layers/blas"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

func init() {
	commands["train"] = command{"train a language or translation model", runTrain}
}

// modelFlags are the flags that shape a model.
type modelFlags struct {
	preset, attn, configPath, activation, norm, positions string
	dropout                                               float64
	window                                                int
	noMatch, bias, untied                                 bool
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.preset, "preset", "tiny", "model size: tiny, small, base or paper")
	fs.StringVar(&m.attn, "attn", "mha", "attention: mha, mqa or gqa:G (G key/value heads)")
	fs.StringVar(&m.configPath, "config", "", "a model config JSON file (replaces -preset)")
	fs.StringVar(&m.activation, "activation", "", "feed-forward activation: relu, gelu or swiglu (default: the preset's)")
	fs.StringVar(&m.norm, "norm", "", "layer or rms (default: the preset's)")
	fs.StringVar(&m.positions, "positions", "", "sinusoidal, learned or rope (default: the preset's)")
	fs.Float64Var(&m.dropout, "dropout", 0, "dropout probability")
	fs.IntVar(&m.window, "window", 0, "local self-attention window (0: full)")
	fs.BoolVar(&m.noMatch, "no-match", false, "do not widen d_ff of MQA/GQA to match the MHA parameter count")
	fs.BoolVar(&m.bias, "bias", false, "biases in linear layers")
	fs.BoolVar(&m.untied, "untied", false, "an output projection of its own instead of the tied embedding")
}

// config builds the model configuration for a task and vocabulary.
func (m *modelFlags) config(task string, vocab, srcVocab int) (models.Config, error) {
	var cfg models.Config
	var err error
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
	if cfg, err = models.Preset(m.preset, task, vocab); err != nil {
		return cfg, fmt.Errorf("%v: %w", err, errUsage)
	}
	if task == models.TaskTranslate && srcVocab != vocab {
		cfg.SrcVocab = srcVocab
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{{&cfg.Activation, m.activation}, {&cfg.Norm, m.norm}, {&cfg.Positions, m.positions}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	cfg.Dropout, cfg.Window, cfg.Bias, cfg.TieEmbeddings = m.dropout, m.window, m.bias, !m.untied
	kv, err := models.ParseAttention(m.attn, cfg.Heads)
	if err != nil {
		return cfg, fmt.Errorf("%v: %w", err, errUsage)
	}
	if cfg, err = cfg.WithKVHeads(kv, !m.noMatch); err != nil {
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
	defaults, ok := models.PresetTraining(mf.preset)
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
	lock, err := openFreshRunDir(*out, *force)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := d.IdentifyFiles(); err != nil {
		return err
	}
	if err := d.Load(); err != nil {
		return err
	}
	cfg, err := mf.config(*task, d.Tok.VocabSize(), d.SrcVocab())
	if err != nil {
		return err
	}
	tr, err := train.NewTrainerRanks(cfg, nil, s, *device, ranks)
	if err != nil {
		return err
	}
	defer tr.Close()
	fmt.Fprintf(os.Stderr, "mqa train: %s %s, %s attention (%d K/V heads), d_ff %d, %d parameters, %d steps, vocab %d → %s\n",
		cfg.Task, mf.preset, cfg.AttentionName(), cfg.KVHeads, cfg.FFDim, cfg.ParamCount(), s.Steps, cfg.Vocab, *out)
	if d.Dropped != "" {
		fmt.Fprintln(os.Stderr, "mqa train:", d.Dropped)
	}
	printBLAS(*device)
	return prof.around(func() error { return runLoop(ctx, tr, d, *out, 0) })
}

// printBLAS says which BLAS a CPU run's matrix products use.
func printBLAS(device string) {
	if device == "cpu" {
		fmt.Fprintln(os.Stderr, "mqa train: matrix products on", blas.Name())
	}
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

// isRunEntry reports whether name is an entry that training creates in a run directory.
func isRunEntry(name string) bool {
	return (checkpoints.Manager{}).Owns(name) || name == checkpoints.LockFile || name == checkpoints.LogFile ||
		strings.HasPrefix(name, ".tmp-"+checkpoints.LogFile+"-")
}

// openFreshRunDir takes the lock of the run directory out for a new run and checks what
// is in it. An empty or new directory, or one holding only what a run that stopped before
// its first complete checkpoint left, is cleaned and used. A directory holding an earlier
// run's checkpoints, or files training does not create, is refused unless force; with
// force an earlier run's checkpoints and log are deleted and every other file is kept.
func openFreshRunDir(out string, force bool) (*checkpoints.RunLock, error) {
	lockPath := filepath.Join(out, checkpoints.LockFile)
	_, statErr := os.Lstat(lockPath)
	hadLock := statErr == nil
	lock, err := checkpoints.LockRun(out)
	if err != nil {
		return nil, err
	}
	refuse := func(err error) (*checkpoints.RunLock, error) {
		_ = lock.Unlock()
		if !hadLock {
			_ = os.Remove(lockPath)
		}
		return nil, err
	}
	mgr := checkpoints.Manager{Root: out}
	infos, err := mgr.List()
	if err != nil {
		return refuse(err)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return refuse(fmt.Errorf("run directory: %w", err))
	}
	var foreign []string
	for _, e := range ents {
		if !isRunEntry(e.Name()) {
			foreign = append(foreign, e.Name())
		}
	}
	switch {
	case len(infos) > 0 && !force:
		return refuse(fmt.Errorf("%s already holds a training run (newest checkpoint %s); continue it with: mqa train -resume %s, or pass -force to start a new run there (deleting its checkpoints and log)",
			out, filepath.Base(infos[len(infos)-1].Dir), out))
	case len(foreign) > 0 && !force:
		if len(foreign) > 3 {
			foreign = append(foreign[:3], fmt.Sprintf("and %d more", len(foreign)-3))
		}
		return refuse(fmt.Errorf("%s is not empty and not an mqa run directory (it holds %s); choose another -out, or pass -force to train there all the same (files training did not create are kept)",
			out, strings.Join(foreign, ", ")))
	}
	if err := cleanRunDir(out); err != nil {
		return refuse(err)
	}
	for _, info := range infos {
		if err := mgr.Remove(info.Dir); err != nil {
			return refuse(fmt.Errorf("-force: removing the earlier run's checkpoint: %w", err))
		}
	}
	if err := os.Remove(filepath.Join(out, checkpoints.LogFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return refuse(fmt.Errorf("-force: removing the earlier run's log: %w", err))
	}
	return lock, nil
}

// runLoop trains and reports the outcome, including how to resume after a signal.
func runLoop(ctx context.Context, tr *train.Trainer, d *rundata.Data, out string, elapsed float64) error {
	opt := d.RunOptions(out, "train")
	opt.Elapsed = time.Duration(elapsed * float64(time.Second))
	if tr.Ranks() > 1 {
		fmt.Fprintf(os.Stderr, "mqa train: data-parallel on %d ranks; each update's global batch is split among them\n", tr.Ranks())
	}
	if ss, ok := d.TrainSource.(train.ShapeSource); ok {
		shapes := ss.Shapes()
		fmt.Fprintf(os.Stderr, "mqa train: %d batch shapes (batch×source×target): %s\n", len(shapes), models.FormatShapes(shapes))
	}
	sum, err := tr.Run(ctx, d.TrainSource, opt)
	switch {
	case errors.Is(err, train.ErrInterrupted):
		fmt.Fprintf(os.Stderr, "mqa train: interrupted at step %d; checkpoint %s\nresume with: mqa train -resume %s\n", tr.Step, sum.Checkpoint, out)
		return rundata.ErrInterrupted
	case err != nil:
		if last, lerr := (checkpoints.Manager{Root: out}).Latest(); lerr == nil {
			return fmt.Errorf("%w (last good checkpoint: %s)", err, last)
		}
		return err
	}
	fmt.Fprintf(os.Stderr, "mqa train: %d steps, final loss %.4f, validation NLL %.4f (ppl %.2f), %.0f tokens/s; checkpoint %s\n",
		sum.Steps, sum.FinalLoss, sum.ValLoss, math.Exp(sum.ValLoss), float64(sum.Tokens)/sum.Seconds, sum.Checkpoint)
	if sum.PeakGPUBytes > 0 {
		fmt.Fprintf(os.Stderr, "mqa train: peak GPU memory %s\n", study.GiB(sum.PeakGPUBytes))
	}
	return nil
}

// signalContext is cancelled by SIGINT or SIGTERM; training then saves and stops.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// cleanRunDir removes what an interrupted run left in the run directory dir (see
// checkpoints.Manager.Clean) and says what it removed.
func cleanRunDir(dir string) error {
	removed, err := checkpoints.Manager{Root: dir}.Clean()
	if len(removed) > 0 {
		fmt.Fprintf(os.Stderr, "mqa train: removed what an interrupted run left in %s: %s\n", dir, strings.Join(removed, ", "))
	}
	return err
}

// resumeTraining continues the run in dir. Only the flags in resumeFlags may be given;
// -steps, when given, is the run's new total (an extension keeps the schedule, see
// scheduleNote), and the other allowed flags replace the run's settings from now on. A
// finished run without a larger -steps is left as it is, with a message.
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
	if _, err := (checkpoints.Manager{Root: dir}).Latest(); err != nil {
		return fmt.Errorf("train: cannot resume %s: %w", dir, err)
	}
	lock, err := checkpoints.LockRun(dir)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := cleanRunDir(dir); err != nil {
		return err
	}
	tr, st, ckpt, err := train.ResumeRanks(dir, device, ranks, of.steps)
	if errors.Is(err, train.ErrStepsTooFew) {
		return fmt.Errorf("train: -steps %d: the run in %s is at step %d; -steps is the run's total, not steps to add, so give more than %d: %w", of.steps, dir, st.Step, st.Step, errUsage)
	}
	if err != nil {
		return err
	}
	defer tr.Close()
	if tr.Step >= tr.Settings.Steps {
		fmt.Fprintf(os.Stderr, "mqa train: the run in %s has already finished all its %d steps; nothing to do (to train it further give -steps N with N > %d)\n", dir, tr.Step, tr.Step)
		return nil
	}
	d := &rundata.Data{}
	runPath := filepath.Join(ckpt, checkpoints.RunFile)
	if err := checkpoints.ReadJSON(runPath, &d.Settings, 1<<20); err != nil {
		return err
	}
	if err := d.CheckBatchSize(); err != nil {
		return fmt.Errorf("%s: %w", runPath, err)
	}
	for _, o := range []struct {
		flag string
		dst  *int
		v    int
	}{{"eval-every", &d.EvalEvery, of.evalEvery}, {"ckpt-every", &d.CkptEvery, of.ckptEvery}, {"keep", &d.Keep, of.keep}, {"eval-batches", &d.EvalBatches, of.evalBatches}} {
		if set[o.flag] {
			*o.dst = o.v
		}
	}
	if err := d.CheckFiles(d.Files()...); err != nil {
		return err
	}
	if d.Tok, d.SrcTok, err = infer.LoadTokenizers(ckpt); err != nil {
		return err
	}
	if err := d.Load(); err != nil {
		return err
	}
	if err := d.TrainSource.Restore(st.Data); err != nil {
		return fmt.Errorf("restoring the data position: %w", err)
	}
	fmt.Fprintf(os.Stderr, "mqa train: resuming %s from %s at step %d of %d\n", tr.Cfg.Task, ckpt, tr.Step, tr.Settings.Steps)
	if tr.Settings.Steps != st.Settings.Steps {
		fmt.Fprintf(os.Stderr, "mqa train: extending the run from %d to %d steps; %s\n", st.Settings.Steps, tr.Settings.Steps, scheduleNote(tr.Settings.Schedule, st.Settings.Steps))
	}
	printBLAS(device)
	return runLoop(ctx, tr, d, dir, st.Elapsed)
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
