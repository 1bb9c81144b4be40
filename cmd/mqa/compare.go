package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mqa/infer/study"
	"mqa/models"
	"mqa/train"
	"mqa/train/runner"
)

func init() {
	commands["compare"] = command{"MHA vs GQA vs MQA: quality against speed, with a report and plots", runCompare}
}

func runCompare(args []string) error {
	fs := newFlags("compare", "[-preset tiny] [-steps N] [-attn mha,gqa:2,mqa] [-tasks lm,translate] [-out DIR] [-device cpu|cuda]")
	r := study.Spec{Command: "mqa compare " + strings.Join(args, " ")}
	fs.StringVar(&r.Preset, "preset", "tiny", "model size: tiny, small, base or paper")
	fs.IntVar(&r.Steps, "steps", 0, "training steps per model (default: the preset's)")
	attn := fs.String("attn", "mha,gqa:2,mqa", "attention kinds to compare, comma-separated")
	tasks := fs.String("tasks", "lm,translate", "tasks, comma-separated: lm, translate")
	fs.StringVar(&r.Out, "out", "", "output directory (default: runs/compare-<time>)")
	fs.StringVar(&r.Device, "device", "cpu", "training device: cpu or cuda")
	fs.Uint64Var(&r.Seed, "seed", 1, "seed shared by every model (weights, data order) and the bootstrap")
	fs.IntVar(&r.Seeds, "seeds", 1, "models trained per attention kind, with seeds seed … seed+N−1 (reported as mean ± standard deviation)")
	fs.IntVar(&r.TimingReps, "timing-reps", 5, "timed runs of each decoding measurement (reported as median, min–max)")
	fs.IntVar(&r.BLEULines, "bleu-lines", -1, "test sentences translated for BLEU (0: all; default: the preset's)")
	fs.IntVar(&r.DecodeBatch, "decode-batch", 0, "the large batch of the decoding-speed measurement (default: the preset's)")
	fs.StringVar(&r.DecodeDevice, "decode-device", "cpu", "where BLEU decoding and the decode timings run: cpu, or cuda (GPU decoder of a -tags mqacuda build)")
	fs.StringVar(&r.MTCorpus, "mt-corpus", "bible.en-es", "embedded translation corpus: bible.en-es or lohelp.en-de")
	fs.StringVar(&r.Train, "train", "", "your training file instead of the corpus (with -valid, -test and one task): text (a document a line) for lm; TSV (source<TAB>target) or SRC,TGT line-aligned files for translate; gzip allowed")
	fs.StringVar(&r.Valid, "valid", "", "your validation file (formats as -train)")
	fs.StringVar(&r.Test, "test", "", "your test file (formats as -train)")
	fs.Float64Var(&r.Dropout, "dropout", -1, "dropout probability (default: the preset's)")
	fs.BoolVar(&r.Quiet, "quiet", false, "no progress on standard error (only errors)")
	fs.IntVar(&r.EvalBatches, "eval-batches", 0, "score only the first N validation and test batches (0: all; for quick runs)")
	fs.Float64Var(&r.Uptrain, "uptrain", 0, "also pool the MHA model into each MQA/GQA kind and train it this fraction of the steps more, beside MHA trained on as long without pooling, their baseline (e.g. 0.05; 0: no uptrained rows)")
	fs.BoolVar(&r.Resume, "resume", false, "continue the interrupted comparison in -out (same flags): finished models are scored again without training, an interrupted one trains on from its last checkpoint")
	gpuMemory := gpuMemoryFlag(fs)
	prof := profileFlags(fs)
	checkRanks := ranksFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := gpuMemory(); err != nil {
		return err
	}
	var err error
	if r.Ranks, err = checkRanks(r.Device); err != nil {
		return err
	}
	def, ok := models.PresetTraining(r.Preset)
	if !ok {
		return fmt.Errorf("compare: unknown preset %q (allowed: tiny, small, base, paper): %w", r.Preset, errUsage)
	}
	r.FillDefaults(def)
	r.Attns = splitList(*attn)
	r.Tasks = splitList(*tasks)
	if r.Steps < 1 || len(r.Attns) == 0 || len(r.Tasks) == 0 {
		return fmt.Errorf("compare: need steps ≥ 1, at least one attention kind and one task: %w", errUsage)
	}
	if r.Seeds < 1 || r.TimingReps < 1 {
		return fmt.Errorf("compare: -seeds %d and -timing-reps %d must be at least 1: %w", r.Seeds, r.TimingReps, errUsage)
	}
	for _, t := range r.Tasks {
		if err := checkTask(t); err != nil {
			return err
		}
	}
	if err := r.Check(); err != nil {
		return fmt.Errorf("compare: %v: %w", err, errUsage)
	}
	if err := train.CheckDevice(r.Device); err != nil {
		return err
	}
	if err := checkDevice("compare", r.DecodeDevice); err != nil {
		return err
	}
	if r.Out == "" {
		r.Out = filepath.Join("runs", "compare-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(r.Out, 0o755); err != nil {
		return err
	}
	ctx, stop := runner.SignalContext()
	defer stop()
	return prof.around(func() error {
		_, err := study.Run(ctx, r)
		return err
	})
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
