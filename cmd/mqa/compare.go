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
	"mqa/models"
	"mqa/train"
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
	decodeDevice        string
	bigBatch            int
	attns, tasks        []string
	seed                uint64
	command             string
	uptrain             float64 // > 0: also uptrain MQA/GQA from MHA for this fraction of the steps
	ranks               int     // data-parallel ranks of each training run (-gpus, -ranks)
}

// kindResult is everything measured for one task and attention kind.
type kindResult struct {
	Task       string `json:"task"`
	Attention  string `json:"attention"`
	Heads      int    `json:"heads"`
	KVHeads    int    `json:"kv_heads"`
	HeadDim    int    `json:"head_dim"`
	FFDim      int    `json:"ff_dim"`
	Params     int    `json:"params"`
	Checkpoint string `json:"checkpoint"`
	// ScoredCheckpoint is the checkpoint with the best validation loss, which every quality
	// and decoding number below is measured on (ScoredStep is its step).
	ScoredCheckpoint string  `json:"scored_checkpoint"`
	ScoredStep       int     `json:"scored_step"`
	Dropout          float64 `json:"dropout"`
	Steps            int     `json:"steps"`
	FinalLoss        float64 `json:"final_train_loss"`
	// Training speed over the whole run.
	TrainTokens     int     `json:"train_tokens"`
	TrainSeconds    float64 `json:"train_seconds"`
	TrainUSPerToken float64 `json:"train_us_per_token"`
	TrainTokensPerS float64 `json:"train_tokens_per_s"`
	PeakGPUBytes    int64   `json:"peak_gpu_bytes,omitempty"` // the GPU executor's high-water mark (GPU training only)
	// Quality.
	ValidNLL    float64 `json:"valid_nll"` // nats per token (ln perplexity)
	ValidPPL    float64 `json:"valid_ppl"`
	TestNLL     float64 `json:"test_nll"`
	TestPPL     float64 `json:"test_ppl"`
	TestWordPPL float64 `json:"test_word_ppl,omitempty"` // LM
	BLEUGreedy  float64 `json:"bleu_greedy,omitempty"`   // translation, test set
	BLEUBeam4   float64 `json:"bleu_beam4,omitempty"`
	ChrFGreedy  float64 `json:"chrf_greedy,omitempty"`
	ChrFBeam4   float64 `json:"chrf_beam4,omitempty"`
	BLEULines   int     `json:"bleu_lines,omitempty"`
	// Decoding speed.
	CacheBytesPerToken int            `json:"kv_cache_bytes_per_token"` // all layers, one sequence
	Decode             []decodeTiming `json:"decode"`
	// Curves from train.jsonl.
	TrainCurve []curvePoint `json:"train_curve"`
	ValidCurve []curvePoint `json:"valid_curve"`
	// UptrainedFrom, for a model pooled from the MHA model and trained Steps more
	// (compare -uptrain), is its source.
	UptrainedFrom *uptrainSource `json:"uptrained_from,omitempty"`
}

// decodeTiming is the time per output token of one decoding mode and batch size.
type decodeTiming struct {
	Mode          string  `json:"mode"` // greedy or beam4 (translation), greedy (LM)
	Batch         int     `json:"batch"`
	Sequences     int     `json:"sequences"`
	OutputTokens  int     `json:"output_tokens"`
	EncoderUS     float64 `json:"encoder_us_per_token"` // translation only
	DecoderUS     float64 `json:"decoder_us_per_token"`
	DecoderSecond float64 `json:"decoder_seconds"`
	// Translation: the decoder's steps summed over the batches, and its time per sequence-step
	// (a batch of n sequences and b beams that takes s steps counts n·b·s). A batch takes as many
	// steps as its longest hypothesis, so µs per output token also depends on how the models'
	// output lengths spread; µs per sequence-step does not.
	DecoderSteps int     `json:"decoder_steps,omitempty"`
	RowStepUS    float64 `json:"decoder_us_per_sequence_step,omitempty"`
}

type curvePoint struct {
	Step int     `json:"step"`
	Loss float64 `json:"loss"`
}

// compareResults is results.json.
type compareResults struct {
	Command       string       `json:"command"`
	Date          string       `json:"date"`
	Machine       string       `json:"machine"`
	Device        string       `json:"device"`
	DecodeDevice  string       `json:"decode_device"`
	Preset        string       `json:"preset"`
	Steps         int          `json:"steps"`
	Seed          uint64       `json:"seed"`
	Data          []string     `json:"data"`
	BLEUSignature string       `json:"bleu_signature,omitempty"`
	ChrFSignature string       `json:"chrf_signature,omitempty"`
	Results       []kindResult `json:"results"`
	Seconds       float64      `json:"seconds"`
	EvalBatches   int          `json:"eval_batches,omitempty"` // > 0: perplexities are of the first batches only
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
	fs.Uint64Var(&r.seed, "seed", 1, "seed shared by every model (weights, data order)")
	fs.IntVar(&r.bleuLines, "bleu-lines", -1, "test sentences translated for BLEU (0: all; default: the preset's)")
	fs.IntVar(&r.bigBatch, "decode-batch", 0, "the large batch of the decoding-speed measurement (default: the preset's)")
	fs.StringVar(&r.decodeDevice, "decode-device", "cpu", "where BLEU decoding and the decode timings run: cpu, or cuda (GPU decoder of a -tags mqacuda build)")
	fs.StringVar(&r.mtCorpus, "mt-corpus", "bible.en-es", "embedded translation corpus: bible.en-es or lohelp.en-de")
	fs.Float64Var(&r.dropout, "dropout", -1, "dropout probability (default: the preset's)")
	fs.IntVar(&r.evalBatches, "eval-batches", 0, "score only the first N validation and test batches (0: all; for quick runs)")
	fs.Float64Var(&r.uptrain, "uptrain", 0, "also pool the MHA model into each MQA/GQA kind and train it this fraction of the steps more (e.g. 0.05; 0: no uptrained rows)")
	gpuMemory := gpuMemoryFlag(fs)
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
	for _, t := range r.tasks {
		if err := checkTask(t); err != nil {
			return err
		}
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
	return r.run(ctx)
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
	res := compareResults{Command: r.command, EvalBatches: r.evalBatches, Date: start.UTC().Format("2006-01-02"), Machine: machine(r.device), Device: r.device, DecodeDevice: r.decodeDevice,
		Preset: r.preset, Steps: r.steps, Seed: r.seed, BLEUSignature: bleu.BLEUSignature, ChrFSignature: bleu.ChrFSignature}
	kinds := slices.Concat(r.attns, r.uptrainKinds())
	phases := len(r.tasks) * len(kinds)
	done := 0
	for _, task := range r.tasks {
		d, err := r.loadData(task)
		if err != nil {
			return err
		}
		note := fmt.Sprintf("%s: %s (BPE vocabulary %d)", task, d.Corpus, d.tok.VocabSize())
		if d.dropped != "" {
			note += "; " + d.dropped
		}
		res.Data = append(res.Data, note)
		for _, attn := range kinds {
			fmt.Fprintf(os.Stderr, "\n[compare %d/%d] %s, %s attention%s\n", done+1, phases, task, attn, eta(start, done, phases))
			kr, err := r.runKind(ctx, d, attn)
			if err != nil {
				return fmt.Errorf("%s %s: %w", task, attn, err)
			}
			res.Results = append(res.Results, kr)
			done++
			// The report so far, so an interrupted comparison still leaves its results.
			res.Seconds = time.Since(start).Seconds()
			if err := writeReport(r.out, res); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(os.Stderr, "\n[compare] done in %s: %s\n", time.Since(start).Round(time.Second), filepath.Join(r.out, "report.md"))
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
func (r *compareRun) loadData(task string) (*dataSpec, error) {
	def := presetDefaults[r.preset]
	// A checkpoint at every validation, so the best one (by validation loss) is kept for scoring.
	of := optFlags{seed: r.seed, evalEvery: max(1, r.steps/10), ckptEvery: max(1, r.steps/10), keep: 1, evalBatches: 8}
	corpus := ""
	if task == models.TaskTranslate {
		corpus = r.mtCorpus
	}
	d := (&dataFlags{corpus: corpus}).spec(task, def, of)
	fmt.Fprintf(os.Stderr, "[compare] preparing %s data (BPE vocabulary %d)\n", task, d.Vocab)
	if err := d.load(); err != nil {
		return nil, err
	}
	if d.dropped != "" {
		fmt.Fprintln(os.Stderr, "[compare]", d.dropped)
	}
	if n := r.evalBatches; n > 0 {
		d.valid, d.test = d.valid[:min(n, len(d.valid))], d.test[:min(n, len(d.test))]
		d.testWords = 0 // the word count is of the whole text: no per-word perplexity on a part
	}
	return d, nil
}

// runKind trains, scores and times one attention kind.
func (r *compareRun) runKind(ctx context.Context, d *dataSpec, attn string) (kindResult, error) {
	if target, ok := uptrainTarget(attn); ok {
		return r.runUptrained(ctx, d, target)
	}
	mf := modelFlags{preset: r.preset, attn: attn, dropout: r.dropout}
	cfg, err := mf.config(d.Task, d.tok.VocabSize(), d.srcVocab())
	if err != nil {
		return kindResult{}, err
	}
	s := train.DefaultSettings(r.steps)
	s.Schedule.Peak, s.Seed, s.LabelSmoothing = presetDefaults[r.preset].lr, r.seed, 0.1
	tr, err := train.NewTrainerRanks(cfg, nil, s, r.device, r.ranks)
	if err != nil {
		return kindResult{}, err
	}
	defer tr.Close()
	// Every kind starts from the same data position.
	if err := d.trainSource.Restore(data.StreamState{Seed: d.Seed}); err != nil {
		return kindResult{}, err
	}
	out := r.runDir(d.Task, attn)
	sum, err := tr.Run(ctx, d.trainSource, d.runOptions(out, "train "+attn))
	if errors.Is(err, train.ErrInterrupted) {
		return kindResult{}, fmt.Errorf("interrupted; the checkpoint is in %s: %w", out, errInterrupted)
	}
	if err != nil {
		return kindResult{}, err
	}
	return r.scoreKind(d, attn, cfg, tr, out, sum)
}

// runDir is the run directory of a task and attention kind.
func (r *compareRun) runDir(task, attn string) string {
	return filepath.Join(r.out, task+"-"+strings.ReplaceAll(attn, ":", ""))
}

// scoreKind measures the model trained into out by tr (run summary sum): quality on its
// best checkpoint, training and decoding speed.
func (r *compareRun) scoreKind(d *dataSpec, attn string, cfg models.Config, tr *train.Trainer, out string, sum train.Summary) (kindResult, error) {
	var err error
	kr := kindResult{Task: d.Task, Attention: attn, Dropout: cfg.Dropout, Heads: cfg.Heads, KVHeads: cfg.KVHeads, HeadDim: cfg.HeadDim, FFDim: cfg.FFDim,
		Params: cfg.ParamCount(), Checkpoint: sum.Checkpoint, Steps: sum.Steps, FinalLoss: sum.FinalLoss,
		TrainTokens: sum.Tokens, TrainSeconds: sum.Seconds, PeakGPUBytes: sum.PeakGPUBytes}
	kr.TrainUSPerToken = sum.Seconds / float64(sum.Tokens) * 1e6
	kr.TrainTokensPerS = float64(sum.Tokens) / sum.Seconds
	if kr.TrainCurve, kr.ValidCurve, err = readCurves(filepath.Join(out, train.LogFile)); err != nil {
		return kr, err
	}
	// Score the checkpoint with the best validation loss (early stopping), as fairseq's
	// checkpoint_best: small data overfits long before the last step.
	best, err := checkpoints.Manager{Root: out}.Best()
	if err != nil {
		return kr, err
	}
	kr.ScoredCheckpoint = best
	if c, err := checkpoints.ReadCompletion(best); err == nil {
		kr.ScoredStep = c.Step
	}
	fmt.Fprintf(os.Stderr, "[compare] scoring %s\n", best)
	// The run already validated the final weights on all of d.valid.
	valid := train.Eval{NLL: sum.ValLoss, PPL: math.Exp(sum.ValLoss)}
	if best != sum.Checkpoint {
		_, params, err := models.LoadModel(best)
		if err != nil {
			return kr, err
		}
		if err := tr.UseParams(params); err != nil {
			return kr, err
		}
		if valid, err = tr.Evaluate(d.valid); err != nil {
			return kr, err
		}
	}
	test, err := tr.Evaluate(d.test)
	if err != nil {
		return kr, err
	}
	kr.ValidNLL, kr.ValidPPL, kr.TestNLL, kr.TestPPL = valid.NLL, valid.PPL, test.NLL, test.PPL
	if d.Task == models.TaskLM && d.testWords > 0 {
		kr.TestWordPPL = math.Exp(test.NLL * float64(test.Tokens) / float64(d.testWords))
	}
	kr.CacheBytesPerToken = int(infer.CacheBytes(cfg.Layers, 1, cfg.KVHeads, 1, cfg.HeadDim))
	backend, err := decodeBackend("compare", cfg, tr.Params, r.decodeDevice, "fp32", false)
	if err != nil {
		return kr, err
	}
	defer closeBackend(backend) // the next model's decoder needs the GPU memory
	if d.Task == models.TaskTranslate {
		err = r.translationQualityAndSpeed(backend, d, &kr)
	} else {
		err = r.lmSpeed(backend, d, &kr)
	}
	return kr, err
}

// readCurves reads the training and validation losses of a run's log.
func readCurves(path string) (trainCurve, validCurve []curvePoint, err error) {
	entries, err := train.ReadLog(path)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if e.Loss != nil {
			trainCurve = append(trainCurve, curvePoint{e.Step, *e.Loss})
		}
		if e.ValLoss != nil {
			validCurve = append(validCurve, curvePoint{e.Step, *e.ValLoss})
		}
	}
	return trainCurve, validCurve, nil
}
