package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/infer"
	"mqa/infer/bleu"
	"mqa/infer/stats"
	"mqa/infer/study"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

func init() {
	commands["compare"] = command{"MHA vs GQA vs MQA: quality against speed, with a report and plots", runCompare}
}

// compareDefaults are compare's settings per preset: the CPU default (tiny) finishes in
// about a quarter of an hour on two cores.
var compareDefaults = map[string]struct {
	steps, bleuLines, bigBatch int
	dropout                    float64
}{
	"tiny":  {steps: 1000, bleuLines: 300, bigBatch: 32},
	"small": {steps: 2000, bleuLines: 500, bigBatch: 64, dropout: 0.1},
	"base":  {steps: 20000, bleuLines: 0, bigBatch: 256, dropout: 0.1},
	"paper": {steps: 20000, bleuLines: 0, bigBatch: 256, dropout: 0.1},
}

// compareRun holds the settings of one comparison.
type compareRun struct {
	preset, device, out string
	steps, bleuLines    int
	evalBatches         int
	dropout             float64
	mtCorpus            string
	files               dataFlags // -train, -valid, -test: the user's data instead of the corpora
	decodeDevice        string
	bigBatch            int
	attns, tasks        []string
	seed                uint64
	seeds, timingReps   int
	command             string
	uptrain             float64 // > 0: also uptrain MQA/GQA from MHA for this fraction of the steps
	quiet               bool
	ranks               int // data-parallel ranks of each training run (-gpus, -ranks)
}

// repeated sums up timed runs of the same work: their medians and ranges.
func repeated(runs []study.DecodeTiming) study.DecodeTiming {
	t := runs[0]
	t.Repeats = len(runs)
	pick := func(f func(study.DecodeTiming) float64) (med, lo, hi float64) {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return stats.MedianRange(xs)
	}
	t.EncoderUS, t.EncoderUSMin, t.EncoderUSMax = pick(func(r study.DecodeTiming) float64 { return r.EncoderUS })
	t.DecoderUS, t.DecoderUSMin, t.DecoderUSMax = pick(func(r study.DecodeTiming) float64 { return r.DecoderUS })
	t.RowStepUS, t.RowStepUSMin, t.RowStepUSMax = pick(func(r study.DecodeTiming) float64 { return r.RowStepUS })
	return t
}

func runCompare(args []string) error {
	fs := newFlags("compare", "[-preset tiny] [-steps N] [-attn mha,gqa:2,mqa] [-tasks lm,translate] [-out DIR] [-device cpu|cuda]")
	r := compareRun{command: "mqa compare " + strings.Join(args, " ")}
	fs.StringVar(&r.preset, "preset", "tiny", "model size: tiny, small, base or paper")
	fs.IntVar(&r.steps, "steps", 0, "training steps per model (default: the preset's)")
	attn := fs.String("attn", "mha,gqa:2,mqa", "attention kinds to compare, comma-separated")
	tasks := fs.String("tasks", "lm,translate", "tasks, comma-separated: lm, translate")
	fs.StringVar(&r.out, "out", "", "output directory (default: runs/compare-<time>)")
	fs.StringVar(&r.device, "device", "cpu", "training device: cpu or cuda")
	fs.Uint64Var(&r.seed, "seed", 1, "seed shared by every model (weights, data order) and the bootstrap")
	fs.IntVar(&r.seeds, "seeds", 1, "models trained per attention kind, with seeds seed … seed+N−1 (reported as mean ± standard deviation)")
	fs.IntVar(&r.timingReps, "timing-reps", 5, "timed runs of each decoding measurement (reported as median, min–max)")
	fs.IntVar(&r.bleuLines, "bleu-lines", -1, "test sentences translated for BLEU (0: all; default: the preset's)")
	fs.IntVar(&r.bigBatch, "decode-batch", 0, "the large batch of the decoding-speed measurement (default: the preset's)")
	fs.StringVar(&r.decodeDevice, "decode-device", "cpu", "where BLEU decoding and the decode timings run: cpu, or cuda (GPU decoder of a -tags mqacuda build)")
	fs.StringVar(&r.mtCorpus, "mt-corpus", "bible.en-es", "embedded translation corpus: bible.en-es or lohelp.en-de")
	fs.StringVar(&r.files.trainPath, "train", "", "your training file instead of the corpus (with -valid, -test and one task): text (a document a line) for lm; TSV (source<TAB>target) or SRC,TGT line-aligned files for translate; gzip allowed")
	fs.StringVar(&r.files.validPath, "valid", "", "your validation file (formats as -train)")
	fs.StringVar(&r.files.testPath, "test", "", "your test file (formats as -train)")
	fs.Float64Var(&r.dropout, "dropout", -1, "dropout probability (default: the preset's)")
	fs.BoolVar(&r.quiet, "quiet", false, "no progress on standard error (only errors)")
	fs.IntVar(&r.evalBatches, "eval-batches", 0, "score only the first N validation and test batches (0: all; for quick runs)")
	fs.Float64Var(&r.uptrain, "uptrain", 0, "also pool the MHA model into each MQA/GQA kind and train it this fraction of the steps more (e.g. 0.05; 0: no uptrained rows)")
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
	if r.ranks, err = checkRanks(r.device); err != nil {
		return err
	}
	def, ok := compareDefaults[r.preset]
	if !ok {
		return fmt.Errorf("compare: unknown preset %q (allowed: tiny, small, base, paper): %w", r.preset, errUsage)
	}
	if r.steps == 0 {
		r.steps = def.steps
	}
	if r.bleuLines < 0 {
		r.bleuLines = def.bleuLines
	}
	if r.bigBatch == 0 {
		r.bigBatch = def.bigBatch
	}
	if r.dropout < 0 {
		r.dropout = def.dropout
	}
	r.attns = splitList(*attn)
	r.tasks = splitList(*tasks)
	if r.steps < 1 || len(r.attns) == 0 || len(r.tasks) == 0 {
		return fmt.Errorf("compare: need steps ≥ 1, at least one attention kind and one task: %w", errUsage)
	}
	if r.seeds < 1 || r.timingReps < 1 {
		return fmt.Errorf("compare: -seeds %d and -timing-reps %d must be at least 1: %w", r.seeds, r.timingReps, errUsage)
	}
	for _, t := range r.tasks {
		if err := checkTask(t); err != nil {
			return err
		}
	}
	if err := r.checkFiles(); err != nil {
		return err
	}
	if r.mtCorpus != "bible.en-es" && r.mtCorpus != "lohelp.en-de" {
		return fmt.Errorf("compare: -mt-corpus %q (allowed: bible.en-es, lohelp.en-de): %w", r.mtCorpus, errUsage)
	}
	heads, _ := models.Preset(r.preset, models.TaskLM, 300)
	for _, a := range r.attns {
		if _, err := models.ParseAttention(a, heads.Heads); err != nil {
			return fmt.Errorf("compare: %v: %w", err, errUsage)
		}
	}
	if err := r.checkUptrain(); err != nil {
		return err
	}
	if err := train.CheckDevice(r.device); err != nil {
		return err
	}
	if err := checkDevice("compare", r.decodeDevice); err != nil {
		return err
	}
	if r.out == "" {
		r.out = filepath.Join("runs", "compare-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return prof.around(func() error { return r.run(ctx) })
}

// checkFiles accepts the user's data only as all three splits of exactly one task.
func (r *compareRun) checkFiles() error {
	f := r.files
	given := 0
	for _, p := range []string{f.trainPath, f.validPath, f.testPath} {
		if p != "" {
			given++
		}
	}
	switch {
	case given == 0:
		return nil
	case given < 3:
		return fmt.Errorf("compare: your data needs all of -train, -valid and -test: %w", errUsage)
	case len(r.tasks) != 1:
		return fmt.Errorf("compare: with -train/-valid/-test name exactly one task (-tasks lm or -tasks translate), not %q: %w", strings.Join(r.tasks, ","), errUsage)
	}
	return nil
}

// identifyFiles names each of the user's files of a task by path, line count and SHA-256.
func (r *compareRun) identifyFiles(task string) ([]study.SplitFiles, error) {
	var out []study.SplitFiles
	for _, s := range []struct{ split, path string }{{"train", r.files.trainPath}, {"valid", r.files.validPath}, {"test", r.files.testPath}} {
		if s.path == "" {
			continue
		}
		paths := []string{s.path}
		if src, tgt, ok := data.SplitPair(s.path); ok && task == models.TaskTranslate {
			paths = []string{src, tgt}
		}
		sf := study.SplitFiles{Task: task, Split: s.split}
		for _, p := range paths {
			id, err := data.IdentifyFile(p)
			if err != nil {
				return nil, err
			}
			sf.Files = append(sf.Files, id)
		}
		out = append(out, sf)
	}
	return out, nil
}

// logf writes a line of progress to standard error, unless -quiet.
func (r *compareRun) logf(format string, args ...any) {
	if !r.quiet {
		fmt.Fprintf(os.Stderr, format, args...)
	}
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

func (r *compareRun) run(ctx context.Context) error {
	start := time.Now()
	res := study.Results{Command: r.command, EvalBatches: r.evalBatches, Date: start.UTC().Format("2006-01-02"), Machine: machine(r.device), Device: r.device, DecodeDevice: r.decodeDevice,
		Preset: r.preset, Steps: r.steps, Seed: r.seed, BLEUSignature: bleu.BLEUSignature, ChrFSignature: bleu.ChrFSignature,
		Version: study.ReadBuildInfo(), Seeds: r.seeds, TimingRepeats: r.timingReps, Resamples: stats.DefaultResamples}
	kinds := slices.Concat(r.attns, r.uptrainKinds())
	phases := len(r.tasks) * len(kinds) * r.seeds
	done := 0
	for _, task := range r.tasks {
		d, err := r.loadData(task)
		if err != nil {
			return err
		}
		files, err := r.identifyFiles(task)
		if err != nil {
			return err
		}
		res.DataFiles = append(res.DataFiles, files...)
		source := d.Corpus
		if len(files) > 0 {
			source = "your files (below)"
		}
		note := fmt.Sprintf("%s: %s (BPE vocabulary %d)", task, source, d.Tok.VocabSize())
		if d.Dropped != "" {
			note += "; " + d.Dropped
		}
		res.Data = append(res.Data, note)
		first := len(res.Results)
		var sets []scoredSets // of res.Results[first:]
		for _, attn := range kinds {
			for k := range r.seeds {
				seed := r.seed + uint64(k)
				r.logf("\n[compare %d/%d] %s, %s attention, seed %d%s\n", done+1, phases, task, attn, seed, eta(start, done, phases))
				kr, s, err := r.runKind(ctx, d, attn, seed)
				if err != nil {
					return fmt.Errorf("%s %s seed %d: %w", task, attn, seed, err)
				}
				res.Results, sets = append(res.Results, kr), append(sets, s)
				r.pairAll(res.Results[first:], sets)
				done++
				// The report so far, so an interrupted comparison still leaves its results.
				res.Seconds = time.Since(start).Seconds()
				res.SeedSummary = study.SeedSummary(res.Results)
				if err := study.WriteReport(r.out, res); err != nil {
					return err
				}
			}
		}
	}
	r.logf("\n[compare] done in %s: %s\n", time.Since(start).Round(time.Second), filepath.Join(r.out, "report.md"))
	return nil
}

// eta estimates the time left from the phases done so far.
func eta(start time.Time, done, total int) string {
	if done == 0 {
		return ""
	}
	per := time.Since(start) / time.Duration(done)
	return fmt.Sprintf(" — %s elapsed, about %s left", time.Since(start).Round(time.Second), (per * time.Duration(total-done)).Round(time.Second))
}

// machine describes the CPU, and the GPU when training on one (as nvidia-smi names it).
func machine(device string) string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	desc := fmt.Sprintf("%s, %d cores, %s/%s, %s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	if device == "cuda" {
		if out, err := exec.Command("nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader").Output(); err == nil {
			desc = strings.TrimSpace(string(out)) + "; host " + desc
		}
	}
	return desc
}

// loadData prepares one task's data for every attention kind (one tokenizer for all).
func (r *compareRun) loadData(task string) (*rundata.Data, error) {
	def := presetDefaults[r.preset]
	// A checkpoint at every validation, so the best one (by validation loss) is kept for scoring.
	of := optFlags{seed: r.seed, evalEvery: max(1, r.steps/10), ckptEvery: max(1, r.steps/10), keep: 1, evalBatches: 8}
	corpus := ""
	if task == models.TaskTranslate {
		corpus = r.mtCorpus
	}
	df := r.files
	df.corpus = corpus
	d := df.spec(task, def, of)
	d.Quiet = r.quiet
	r.logf("[compare] preparing %s data (BPE vocabulary %d)\n", task, d.Vocab)
	if err := d.Load(); err != nil {
		return nil, err
	}
	if d.Dropped != "" {
		r.logf("[compare] %s\n", d.Dropped)
	}
	if n := r.evalBatches; n > 0 {
		d.ValidBatches, d.TestBatches = d.ValidBatches[:min(n, len(d.ValidBatches))], d.TestBatches[:min(n, len(d.TestBatches))]
	}
	return d, nil
}

// runKind trains, scores and times one attention kind with one seed (an uptrained kind: see
// runUptrained), and returns what its paired comparison with MHA needs.
func (r *compareRun) runKind(ctx context.Context, d *rundata.Data, attn string, seed uint64) (study.KindResult, scoredSets, error) {
	if target, ok := uptrainTarget(attn); ok {
		return r.runUptrained(ctx, d, target, seed)
	}
	var sets scoredSets
	mf := modelFlags{preset: r.preset, attn: attn, dropout: r.dropout}
	cfg, err := mf.config(d.Task, d.Tok.VocabSize(), d.SrcVocab())
	if err != nil {
		return study.KindResult{}, sets, err
	}
	s := train.DefaultSettings(r.steps)
	s.Schedule.Peak, s.Seed, s.LabelSmoothing = presetDefaults[r.preset].lr, seed, 0.1
	tr, err := train.NewTrainerRanks(cfg, nil, s, r.device, r.ranks)
	if err != nil {
		return study.KindResult{}, sets, err
	}
	defer tr.Close()
	// Every kind of a seed starts from the same data position (and run.json records the seed).
	d.Seed = seed
	if err := d.TrainSource.Restore(data.StreamState{Seed: seed}); err != nil {
		return study.KindResult{}, sets, err
	}
	out := r.runDir(d.Task, attn, seed)
	sum, err := tr.Run(ctx, d.TrainSource, d.RunOptions(out, "train "+attn))
	if errors.Is(err, train.ErrInterrupted) {
		return study.KindResult{}, sets, fmt.Errorf("interrupted; the checkpoint is in %s: %w", out, errInterrupted)
	}
	if err != nil {
		return study.KindResult{}, sets, err
	}
	return r.scoreKind(d, attn, seed, cfg, tr, out, sum)
}

// runDir is the run directory of a task, attention kind and seed (named by the seed only
// when a comparison trains several).
func (r *compareRun) runDir(task, attn string, seed uint64) string {
	name := task + "-" + strings.ReplaceAll(attn, ":", "")
	if r.seeds > 1 {
		name += fmt.Sprintf("-seed%d", seed)
	}
	return filepath.Join(r.out, name)
}

// scoreKind measures the model trained into out by tr (run summary sum): quality on its
// best checkpoint, training and decoding speed; and returns what its paired comparison with
// MHA needs.
func (r *compareRun) scoreKind(d *rundata.Data, attn string, seed uint64, cfg models.Config, tr *train.Trainer, out string, sum train.Summary) (study.KindResult, scoredSets, error) {
	var sets scoredSets
	var err error
	kr := study.KindResult{Task: d.Task, Attention: attn, Seed: seed, Dropout: cfg.Dropout, Heads: cfg.Heads, KVHeads: cfg.KVHeads, HeadDim: cfg.HeadDim, FFDim: cfg.FFDim,
		Params: cfg.ParamCount(), Checkpoint: sum.Checkpoint, Steps: sum.Steps, FinalLoss: sum.FinalLoss,
		TrainTokens: sum.Tokens, TrainSeconds: sum.Seconds, PeakGPUBytes: sum.PeakGPUBytes}
	kr.TrainUSPerToken = sum.Seconds / float64(sum.Tokens) * 1e6
	kr.TrainTokensPerS = float64(sum.Tokens) / sum.Seconds
	if kr.TrainCurve, kr.ValidCurve, err = readCurves(filepath.Join(out, checkpoints.LogFile)); err != nil {
		return kr, sets, err
	}
	// Score the checkpoint with the best validation loss (early stopping), as fairseq's
	// checkpoint_best: small data overfits long before the last step.
	best, err := checkpoints.Manager{Root: out}.Best()
	if err != nil {
		return kr, sets, err
	}
	kr.ScoredCheckpoint = best
	if c, err := checkpoints.ReadCompletion(best); err == nil {
		kr.ScoredStep = c.Step
	}
	r.logf("[compare] scoring %s\n", best)
	if best != sum.Checkpoint {
		_, params, err := models.LoadModel(best)
		if err != nil {
			return kr, sets, err
		}
		if err := tr.UseParams(params); err != nil {
			return kr, sets, err
		}
	}
	if sets.valid, _, err = r.scoreUnits(tr, d, d.ValidBatches, d.ValidDocs); err != nil {
		return kr, sets, fmt.Errorf("validation: %w", err)
	}
	if sets.test, kr.TestWordPPL, err = r.scoreUnits(tr, d, d.TestBatches, d.TestDocs); err != nil {
		return kr, sets, fmt.Errorf("test: %w", err)
	}
	kr.ValidNLL, kr.TestNLL = sets.valid.lnPPL(), sets.test.lnPPL()
	kr.ValidPPL, kr.TestPPL = math.Exp(kr.ValidNLL), math.Exp(kr.TestNLL)
	kr.ValidUnits, kr.TestUnits = len(sets.valid.NLL), len(sets.test.NLL)
	kr.UnitKind, kr.LnPPLCI, kr.TestLnPPLCI = sets.test.Kind, r.lnPPLCI(sets.valid), r.lnPPLCI(sets.test)
	kr.CacheBytesPerToken = int(infer.CacheBytes(cfg.Layers, 1, cfg.KVHeads, 1, cfg.HeadDim))
	backend, err := decodeBackend("compare", cfg, tr.Params, r.decodeDevice, "fp32", false)
	if err != nil {
		return kr, sets, err
	}
	defer closeBackend(backend) // the next model's decoder needs the GPU memory
	if d.Task == models.TaskTranslate {
		err = r.translationQualityAndSpeed(backend, d, &kr, &sets)
	} else {
		err = r.lmSpeed(backend, d, &kr)
	}
	return kr, sets, err
}

// scoreUnits scores evaluation batches token by token and sums the NLLs per sentence
// (translation) or per document (LM; per evaluation window when there are fewer than
// study.MinUnits documents). For an LM it also returns the per-word perplexity of the documents
// scored completely (0 without any).
func (r *compareRun) scoreUnits(tr *train.Trainer, d *rundata.Data, batches []train.Batch, docs []rundata.DocSize) (units, float64, error) {
	nll, err := tr.TokenNLL(batches)
	if err != nil {
		return units{}, 0, err
	}
	if d.Task == models.TaskTranslate {
		return sentenceUnits(batches, nll), 0, nil
	}
	u := documentUnits(batches, nll, docs)
	wordPPL, _ := u.wordPPL()
	if !u.ok() {
		u = sentenceUnits(batches, nll)
		u.Kind = "windows"
	}
	return u, wordPPL, nil
}

// readCurves reads the training and validation losses of a run's log.
func readCurves(path string) (trainCurve, validCurve []study.CurvePoint, err error) {
	entries, err := train.ReadLog(path)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if e.Loss != nil {
			trainCurve = append(trainCurve, study.CurvePoint{Step: e.Step, Loss: *e.Loss})
		}
		if e.ValLoss != nil {
			validCurve = append(validCurve, study.CurvePoint{Step: e.Step, Loss: *e.ValLoss})
		}
	}
	return trainCurve, validCurve, nil
}
