package study

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
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// Spec is what one comparison trains, scores and times (mqa compare's flags fill it).
type Spec struct {
	Preset             string // model size: tiny, small, base or paper
	Device             string // training device: cpu or cuda
	Out                string // output directory (created by the caller)
	Steps              int    // training steps per model
	BLEULines          int    // test sentences translated for BLEU (0: all)
	EvalBatches        int    // > 0: score only the first validation and test batches
	Dropout            float64
	MTCorpus           string // embedded translation corpus
	Train, Valid, Test string // the user's data instead of the corpora (all three, one task)
	DecodeDevice       string // where BLEU decoding and the decode timings run: cpu or cuda
	DecodeBatch        int    // the large batch of the decoding-speed measurement
	Attns, Tasks       []string
	Seed               uint64  // seed of the first model of each kind, and of the bootstrap
	Seeds              int     // models per attention kind, seeds Seed … Seed+Seeds−1
	TimingReps         int     // timed runs of each decoding measurement
	Command            string  // the command line, for the report
	Uptrain            float64 // > 0: also uptrain MQA/GQA from MHA for this fraction of the steps
	Quiet              bool    // no progress on standard error
	Ranks              int     // data-parallel ranks of each training run (-gpus, -ranks)
	Resume             bool    // continue the comparison in Out (see trainRun)
}

// repeated sums up timed runs of the same work: their medians and ranges.
func repeated(runs []DecodeTiming) DecodeTiming {
	t := runs[0]
	t.Repeats = len(runs)
	pick := func(f func(DecodeTiming) float64) (med, lo, hi float64) {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return stats.MedianRange(xs)
	}
	t.EncoderUS, t.EncoderUSMin, t.EncoderUSMax = pick(func(r DecodeTiming) float64 { return r.EncoderUS })
	t.DecoderUS, t.DecoderUSMin, t.DecoderUSMax = pick(func(r DecodeTiming) float64 { return r.DecoderUS })
	t.RowStepUS, t.RowStepUSMin, t.RowStepUSMax = pick(func(r DecodeTiming) float64 { return r.RowStepUS })
	return t
}

// identifyFiles names each of the user's files of a task by path, line count and SHA-256.
func (r *Spec) identifyFiles(task string) ([]SplitFiles, error) {
	var out []SplitFiles
	for _, s := range []struct{ split, path string }{{"train", r.Train}, {"valid", r.Valid}, {"test", r.Test}} {
		if s.path == "" {
			continue
		}
		paths := []string{s.path}
		if src, tgt, ok := data.SplitPair(s.path); ok && task == models.TaskTranslate {
			paths = []string{src, tgt}
		}
		sf := SplitFiles{Task: task, Split: s.split}
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

// logf writes a line of progress to standard error, unless quiet.
func (r *Spec) logf(format string, args ...any) {
	if !r.Quiet {
		fmt.Fprintf(os.Stderr, format, args...)
	}
}

// Run trains, scores and times every task, attention kind and seed of the comparison s,
// writing results.json, report.md and the plots into s.Out after each model (so that an
// interrupted comparison still leaves its results), and returns the results. It holds the
// lock of s.Out (checkpoints.LockRun) while it runs: a second comparison writing the same
// directory is refused.
func Run(ctx context.Context, s Spec) (Results, error) {
	return s.run(ctx)
}

func (r *Spec) run(ctx context.Context) (Results, error) {
	lock, err := checkpoints.LockRun(r.Out)
	if err != nil {
		return Results{}, fmt.Errorf("compare: %w", err)
	}
	defer lock.Unlock()
	start := time.Now()
	res := Results{Command: r.Command, EvalBatches: r.EvalBatches, Date: start.UTC().Format("2006-01-02"), Machine: machine(r.Device), Device: r.Device, DecodeDevice: r.DecodeDevice,
		Preset: r.Preset, Steps: r.Steps, Seed: r.Seed, BLEUSignature: bleu.BLEUSignature, ChrFSignature: bleu.ChrFSignature,
		Version: ReadBuildInfo(), Seeds: r.Seeds, TimingRepeats: r.TimingReps, Resamples: stats.DefaultResamples}
	kinds := slices.Concat(r.Attns, r.uptrainKinds())
	phases := len(r.Tasks) * len(kinds) * r.Seeds
	done := 0
	for _, task := range r.Tasks {
		d, err := r.loadData(task)
		if err != nil {
			return res, err
		}
		files, err := r.identifyFiles(task)
		if err != nil {
			return res, err
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
		if task == models.TaskTranslate {
			if err := r.writeReferences(d); err != nil {
				return res, err
			}
		}
		first := len(res.Results)
		var sets []scoredSets // of res.Results[first:]
		for _, attn := range kinds {
			for k := range r.Seeds {
				seed := r.Seed + uint64(k)
				if ctx.Err() != nil { // stopped while the last model was scored: start no other
					return res, r.resumable(fmt.Sprintf("interrupted before %s %s seed %d", task, attn, seed))
				}
				r.logf("\n[compare %d/%d] %s, %s attention, seed %d%s\n", done+1, phases, task, attn, seed, eta(start, done, phases))
				kr, s, err := r.runKind(ctx, d, attn, seed)
				if err != nil {
					return res, fmt.Errorf("%s %s seed %d: %w", task, attn, seed, err)
				}
				res.Results, sets = append(res.Results, kr), append(sets, s)
				r.pairAll(res.Results[first:], sets)
				done++
				// The report so far, so an interrupted comparison still leaves its results.
				res.Seconds = time.Since(start).Seconds()
				res.SeedSummary = seedSummary(res.Results)
				if err := WriteReport(r.Out, res); err != nil {
					return res, err
				}
			}
		}
	}
	r.logf("\n[compare] done in %s: %s\n", time.Since(start).Round(time.Second), filepath.Join(r.Out, "report.md"))
	return res, nil
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
func (r *Spec) loadData(task string) (*rundata.Data, error) {
	def, _ := models.PresetTraining(r.Preset)
	// A checkpoint at every validation, so the best one (by validation loss) is kept for scoring.
	corpus := ""
	if task == models.TaskTranslate {
		corpus = r.MTCorpus
	}
	every := max(1, r.Steps/10)
	d := &rundata.Data{Settings: rundata.Settings{Task: task, Corpus: corpus, Train: r.Train, Valid: r.Valid, Test: r.Test,
		Vocab: def.Vocab, SeqLen: def.SeqLen, Batch: def.Batch, MaxTokens: def.MaxTokens, MaxLen: def.MaxLen, Seed: r.Seed,
		EvalEvery: every, CkptEvery: every, Keep: 1, EvalBatches: 8}, Quiet: r.Quiet}
	r.logf("[compare] preparing %s data (BPE vocabulary %d)\n", task, d.Vocab)
	if err := d.Load(); err != nil {
		return nil, err
	}
	if d.Dropped != "" {
		r.logf("[compare] %s\n", d.Dropped)
	}
	if n := r.EvalBatches; n > 0 {
		d.ValidBatches, d.TestBatches = d.ValidBatches[:min(n, len(d.ValidBatches))], d.TestBatches[:min(n, len(d.TestBatches))]
	}
	return d, nil
}

// runKind trains, scores and times one attention kind with one seed (an uptrained kind: see
// runUptrained), and returns what its paired comparison with MHA needs.
func (r *Spec) runKind(ctx context.Context, d *rundata.Data, attn string, seed uint64) (KindResult, scoredSets, error) {
	if target, ok := uptrainTarget(attn); ok {
		return r.runUptrained(ctx, d, target, seed)
	}
	var sets scoredSets
	// The preset with the kind's K/V heads (MQA/GQA d_ff widened to MHA's parameter count).
	cfg, err := models.Spec{Preset: r.Preset, Task: d.Task, Vocab: d.Tok.VocabSize(), SrcVocab: d.SrcVocab(), Attention: attn, Dropout: r.Dropout}.Config()
	if err != nil {
		return KindResult{}, sets, err
	}
	def, _ := models.PresetTraining(r.Preset)
	s := train.DefaultSettings(r.Steps)
	s.Schedule.Peak, s.Seed, s.LabelSmoothing = def.LR, seed, 0.1
	// Every kind of a seed starts from the same data position (and run.json records the seed).
	d.Seed = seed
	out := r.runDir(d.Task, attn, seed)
	tr, sum, err := r.trainRun(ctx, d, out, "train "+attn, cfg, r.Steps, func() (*train.Trainer, error) {
		if err := d.TrainSource.Restore(data.StreamState{Seed: seed}); err != nil {
			return nil, err
		}
		return train.NewTrainerRanks(cfg, nil, s, r.Device, r.Ranks)
	})
	if err != nil {
		return KindResult{}, sets, err
	}
	defer tr.Close()
	return r.scoreKind(ctx, d, attn, seed, cfg, tr, out, sum)
}

// runDir is the run directory of a task, attention kind and seed (named by the seed only
// when a comparison trains several).
func (r *Spec) runDir(task, attn string, seed uint64) string {
	name := task + "-" + strings.ReplaceAll(attn, ":", "")
	if r.Seeds > 1 {
		name += fmt.Sprintf("-seed%d", seed)
	}
	return filepath.Join(r.Out, name)
}

// scoreKind measures the model trained into out by tr (run summary sum): quality on its
// best checkpoint, training and decoding speed; and returns what its paired comparison with
// MHA needs.
func (r *Spec) scoreKind(ctx context.Context, d *rundata.Data, attn string, seed uint64, cfg models.Config, tr *train.Trainer, out string, sum train.Summary) (KindResult, scoredSets, error) {
	var sets scoredSets
	var err error
	kr := KindResult{Task: d.Task, Attention: attn, Seed: seed, Dropout: cfg.Dropout, Heads: cfg.Heads, KVHeads: cfg.KVHeads, HeadDim: cfg.HeadDim, FFDim: cfg.FFDim,
		Params: cfg.ParamCount(), Checkpoint: sum.Checkpoint, Steps: sum.Steps, FinalLoss: sum.FinalLoss,
		TrainTokens: sum.Tokens, TrainSeconds: sum.Seconds, PeakGPUBytes: sum.PeakGPUBytes}
	if sum.Tokens > 0 && sum.Seconds > 0 { // a resumed run whose log predates its token counts has neither
		kr.TrainUSPerToken = sum.Seconds / float64(sum.Tokens) * 1e6
		kr.TrainTokensPerS = float64(sum.Tokens) / sum.Seconds
	}
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
	if ctx.Err() != nil {
		return kr, sets, r.stopped(out)
	}
	if sets.test, kr.TestWordPPL, err = r.scoreUnits(tr, d, d.TestBatches, d.TestDocs); err != nil {
		return kr, sets, fmt.Errorf("test: %w", err)
	}
	if ctx.Err() != nil {
		return kr, sets, r.stopped(out)
	}
	kr.ValidNLL, kr.TestNLL = sets.valid.lnPPL(), sets.test.lnPPL()
	kr.ValidPPL, kr.TestPPL = math.Exp(kr.ValidNLL), math.Exp(kr.TestNLL)
	kr.ValidUnits, kr.TestUnits = len(sets.valid.NLL), len(sets.test.NLL)
	kr.UnitKind, kr.LnPPLCI, kr.TestLnPPLCI = sets.test.Kind, r.lnPPLCI(sets.valid), r.lnPPLCI(sets.test)
	kr.CacheBytesPerToken = int(infer.CacheBytes(cfg.Layers, 1, cfg.KVHeads, 1, cfg.HeadDim))
	backend, err := infer.NewBackend(r.DecodeDevice, cfg, tr.Params, infer.BackendOptions{Cache: "fp32"})
	if err != nil {
		return kr, sets, err
	}
	defer infer.CloseBackend(backend) // the next model's decoder needs the GPU memory
	if d.Task == models.TaskTranslate {
		err = r.translationQualityAndSpeed(ctx, backend, d, out, &kr, &sets)
	} else {
		err = r.lmSpeed(ctx, backend, d, &kr)
	}
	if errors.Is(err, context.Canceled) {
		err = r.stopped(out)
	}
	return kr, sets, err
}

// scoreUnits scores evaluation batches token by token and sums the NLLs per sentence
// (translation) or per document (LM; per evaluation window when there are fewer than
// MinUnits documents). For an LM it also returns the per-word perplexity of the documents
// scored completely (0 without any).
func (r *Spec) scoreUnits(tr *train.Trainer, d *rundata.Data, batches []train.Batch, docs []rundata.DocSize) (units, float64, error) {
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
func readCurves(path string) (trainCurve, validCurve []CurvePoint, err error) {
	entries, err := train.ReadLog(path)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if e.Loss != nil {
			trainCurve = append(trainCurve, CurvePoint{Step: e.Step, Loss: *e.Loss})
		}
		if e.ValLoss != nil {
			validCurve = append(validCurve, CurvePoint{Step: e.Step, Loss: *e.ValLoss})
		}
	}
	return trainCurve, validCurve, nil
}
