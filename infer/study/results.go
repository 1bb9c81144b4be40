package study

import (
	"mqa/data"
	"mqa/infer/stats"
	"mqa/models"
	"mqa/train/rundata"
)

// KindResult is everything measured for one task and attention kind.
type KindResult struct {
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
	Seed            uint64  `json:"seed"`
	// Quality.
	ValidNLL    float64 `json:"valid_nll"` // nats per token (ln perplexity)
	ValidPPL    float64 `json:"valid_ppl"`
	TestNLL     float64 `json:"test_nll"`
	TestPPL     float64 `json:"test_ppl"`
	TestWordPPL float64 `json:"test_word_ppl,omitempty"` // LM, over the completely scored test documents
	BLEUGreedy  float64 `json:"bleu_greedy,omitempty"`   // translation, test set
	BLEUBeam4   float64 `json:"bleu_beam4,omitempty"`
	ChrFGreedy  float64 `json:"chrf_greedy,omitempty"`
	ChrFBeam4   float64 `json:"chrf_beam4,omitempty"`
	BLEULines   int     `json:"bleu_lines,omitempty"`
	// Bootstrap 95 % intervals (stats.DefaultResamples resamples of the sentences or documents,
	// seeded with the comparison's seed): ln-perplexity of the validation and test sets, and
	// BLEU and chrF of the beam-4 (and greedy) translations.
	// Intervals need at least MinUnits units; with fewer they are left out.
	UnitKind     string          `json:"bootstrap_units"` // sentences (translation), documents or windows (LM)
	ValidUnits   int             `json:"valid_units"`
	TestUnits    int             `json:"test_units"`
	LnPPLCI      *stats.Interval `json:"ln_ppl_ci95,omitempty"` // validation
	TestLnPPLCI  *stats.Interval `json:"test_ln_ppl_ci95,omitempty"`
	BLEUCI       *stats.Interval `json:"bleu_ci95,omitempty"` // beam 4
	ChrFCI       *stats.Interval `json:"chrf_ci95,omitempty"`
	BLEUGreedyCI *stats.Interval `json:"bleu_greedy_ci95,omitempty"`
	ChrFGreedyCI *stats.Interval `json:"chrf_greedy_ci95,omitempty"`
	// Paired bootstrap against Baseline (every model but MHA): the p-value of sacreBLEU's
	// --paired-bs test and the interval of this model's score minus the baseline's.
	Baseline        string          `json:"baseline,omitempty"`                // the baseline's Attention: see baselineIndex
	PairedPBLEU     *float64        `json:"paired_bootstrap_p_bleu,omitempty"` // beam 4
	BLEUDiffCI      *stats.Interval `json:"bleu_diff_ci95,omitempty"`
	PairedPChrF     *float64        `json:"paired_bootstrap_p_chrf,omitempty"`
	ChrFDiffCI      *stats.Interval `json:"chrf_diff_ci95,omitempty"`
	LnPPLDiffCI     *stats.Interval `json:"ln_ppl_diff_ci95,omitempty"` // validation
	TestLnPPLDiffCI *stats.Interval `json:"test_ln_ppl_diff_ci95,omitempty"`
	// Decoding speed.
	CacheBytesPerToken int            `json:"kv_cache_bytes_per_token"` // all layers, one sequence
	Decode             []DecodeTiming `json:"decode"`
	// Curves from train.jsonl.
	TrainCurve []CurvePoint `json:"train_curve"`
	ValidCurve []CurvePoint `json:"valid_curve"`
	// UptrainedFrom, for a model pooled from the MHA model and trained Steps more
	// (compare -uptrain), is its source.
	UptrainedFrom *rundata.UptrainSource `json:"uptrained_from,omitempty"`
}

// DecodeTiming is the time per output token of one decoding mode and batch size: the
// median, minimum and maximum over Repeats timed runs of the same work.
type DecodeTiming struct {
	Mode         string  `json:"mode"` // greedy or beam4 (translation), greedy (LM)
	Batch        int     `json:"batch"`
	Sequences    int     `json:"sequences"`
	OutputTokens int     `json:"output_tokens"`
	Repeats      int     `json:"repeats"`
	EncoderUS    float64 `json:"encoder_us_median"` // per output token; translation only
	EncoderUSMin float64 `json:"encoder_us_min"`
	EncoderUSMax float64 `json:"encoder_us_max"`
	DecoderUS    float64 `json:"decoder_us_median"` // per output token
	DecoderUSMin float64 `json:"decoder_us_min"`
	DecoderUSMax float64 `json:"decoder_us_max"`
	// Translation: the decoder's steps summed over the batches, and its time per sequence-step
	// (a batch of n sequences and b beams that takes s steps counts n·b·s). A batch takes as many
	// steps as its longest hypothesis, so µs per output token also depends on how the models'
	// output lengths spread; µs per sequence-step does not.
	DecoderSteps int     `json:"decoder_steps,omitempty"`
	RowStepUS    float64 `json:"decoder_step_us_median,omitempty"`
	RowStepUSMin float64 `json:"decoder_step_us_min,omitempty"`
	RowStepUSMax float64 `json:"decoder_step_us_max,omitempty"`
}

type CurvePoint struct {
	Step int     `json:"step"`
	Loss float64 `json:"loss"`
}

// SplitFiles are the files of one split of a task: one text or TSV file, or a source and a
// target file.
type SplitFiles struct {
	Task  string        `json:"task"`
	Split string        `json:"split"`
	Files []data.FileID `json:"files"`
}

// Results is results.json.
type Results struct {
	Command      string   `json:"command"`
	Date         string   `json:"date"`
	Machine      string   `json:"machine"`
	Device       string   `json:"device"`
	DecodeDevice string   `json:"decode_device"`
	Preset       string   `json:"preset"`
	Steps        int      `json:"steps"`
	Seed         uint64   `json:"seed"`
	Data         []string `json:"data"`
	// DataFiles names the user's files (-train, -valid, -test) by path, line count and SHA-256.
	DataFiles     []SplitFiles `json:"data_files,omitempty"`
	BLEUSignature string       `json:"bleu_signature,omitempty"`
	ChrFSignature string       `json:"chrf_signature,omitempty"`
	Version       BuildInfo    `json:"version"`
	Seeds         int          `json:"seeds"` // models per attention kind, seeds Seed … Seed+Seeds−1
	TimingRepeats int          `json:"timing_repeats"`
	Resamples     int          `json:"bootstrap_resamples"`
	Results       []KindResult `json:"results"`
	SeedSummary   []SeedStats  `json:"seed_summary,omitempty"` // with Seeds > 1
	Seconds       float64      `json:"seconds"`
	EvalBatches   int          `json:"eval_batches,omitempty"` // > 0: perplexities are of the first batches only
}

// MeanStd is a mean and a sample standard deviation over seeds.
type MeanStd struct {
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
}

func newMeanStd(xs []float64) MeanStd {
	m, s := stats.MeanStd(xs)
	return MeanStd{m, s}
}

// SeedStats sums up the models of one task and attention kind trained with different seeds.
type SeedStats struct {
	Task       string   `json:"task"`
	Attention  string   `json:"attention"`
	Seeds      int      `json:"seeds"`
	ValidLnPPL MeanStd  `json:"valid_ln_ppl"`
	TestLnPPL  MeanStd  `json:"test_ln_ppl"`
	BLEUBeam4  *MeanStd `json:"bleu_beam4,omitempty"`
	ChrFBeam4  *MeanStd `json:"chrf_beam4,omitempty"`
}

// seedSummary is the mean ± standard deviation over seeds of each task and attention kind
// with more than one seed, in the order of the results.
func seedSummary(results []KindResult) []SeedStats {
	var out []SeedStats
	seen := map[[2]string]bool{}
	for _, first := range results {
		key := [2]string{first.Task, first.Attention}
		if seen[key] {
			continue
		}
		seen[key] = true
		var valid, test, bl, ch []float64
		for _, kr := range results {
			if kr.Task == first.Task && kr.Attention == first.Attention {
				valid, test = append(valid, kr.ValidNLL), append(test, kr.TestNLL)
				bl, ch = append(bl, kr.BLEUBeam4), append(ch, kr.ChrFBeam4)
			}
		}
		if len(valid) < 2 {
			continue
		}
		s := SeedStats{Task: first.Task, Attention: first.Attention, Seeds: len(valid), ValidLnPPL: newMeanStd(valid), TestLnPPL: newMeanStd(test)}
		if first.Task == models.TaskTranslate {
			b, c := newMeanStd(bl), newMeanStd(ch)
			s.BLEUBeam4, s.ChrFBeam4 = &b, &c
		}
		out = append(out, s)
	}
	return out
}

// MinUnits is the fewest units a bootstrap interval is computed from. An LM evaluation text
// of fewer documents is resampled by its evaluation windows (consecutive token blocks) instead.
const MinUnits = 10
