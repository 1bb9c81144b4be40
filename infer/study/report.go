package study

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"mqa/checkpoints"
	"mqa/infer/stats"
	"mqa/train"
)

// Shazeer 2019's figures, for the report's side-by-side tables (WMT14 EN-DE, TPUv2).
const paperNote = "Shazeer 2019, WMT14 EN-DE (Table 1, Table 2 on TPUv2) and the Billion-Word LM (Table 3): different data and hardware"

// WriteReport writes results.json, the plots and report.md into dir.
func WriteReport(dir string, res Results) error {
	if err := checkpoints.WriteJSON(filepath.Join(dir, "results.json"), res); err != nil {
		return err
	}
	plots, err := writePlots(dir, res)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# MHA vs GQA vs MQA: quality against speed\n\n")
	p("- command: `%s`\n- mqa: %s\n- date: %s\n- machine: %s (training on %s, decoding on %s)\n- preset: %s, %d training steps per model, same data order for every model of a seed\n",
		res.Command, res.Version, res.Date, res.Machine, res.Device, res.DecodeDevice, res.Preset, res.Steps)
	if res.Seeds > 1 {
		p("- %d models per attention kind, seeds %d–%d; the tables show each, \"Across seeds\" their mean ± standard deviation\n", res.Seeds, res.Seed, res.Seed+uint64(res.Seeds)-1)
	} else {
		p("- seed %d (one model per attention kind: differences between seeds are not measured; `-seeds N` trains N)\n", res.Seed)
	}
	for _, d := range res.Data {
		p("- data: %s\n", d)
	}
	for _, sf := range res.DataFiles {
		var names []string
		for _, f := range sf.Files {
			names = append(names, fmt.Sprintf("`%s` (%d lines, %d bytes, SHA-256 `%s`)", f.Path, f.Lines, f.Bytes, f.SHA256))
		}
		p("- %s %s: %s\n", sf.Task, sf.Split, strings.Join(names, " and "))
	}
	p("- every model of a task has the same parameter count (MQA/GQA d_ff widened as in the paper)\n")
	if note := uptrainNote(res); note != "" {
		p("- %s\n", note)
	}
	p("- intervals: 95 %% bootstrap intervals over the test sentences (translation) or documents (LM; its evaluation windows when it has fewer than %d documents), %d resamples with seed %d; p: sacreBLEU's paired bootstrap test against the row's baseline (the MHA model of the same seed; for uptrained rows, that model continued as long); timings: median (min–max) of %d runs\n",
		MinUnits, res.Resamples, res.Seed, res.TimingRepeats)
	if res.EvalBatches > 0 {
		p("- **perplexities are of the first %d validation and test batches only** (-eval-batches); per-word perplexity of the documents scored completely\n", res.EvalBatches)
	}
	p("\n")
	p("## What the numbers say\n\n%s\n\n", summary(res))

	if lm := rowsOf(res, "lm"); len(lm) > 0 {
		p("## Language modelling (layout of the paper's Table 3)\n\n")
		p("| attention | h | K/V heads | d_k | d_ff | params | valid ln PPL [95 %% CI] | test ln PPL [95 %% CI] | test PPL (token) | test PPL (word) |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range lm {
			p("| %s | %d | %d | %d | %d | %d | %.4f %s | %.4f %s | %.2f | %s |\n", rowLabel(r, res.Seeds), r.Heads, r.KVHeads, r.HeadDim, r.FFDim, r.Params,
				r.ValidNLL, ciPtr(r.LnPPLCI, 4), r.TestNLL, ciPtr(r.TestLnPPLCI, 4), r.TestPPL, orDash(r.TestWordPPL))
		}
		p("| *paper: multi-head* | | | | | | | | | *29.9 (dev)* |\n| *paper: multi-query* | | | | | | | | | *30.2 (dev)* |\n\n")
		p("Decoding speed (cached, greedy, µs per generated token, median (min–max) of %d runs):\n\n| attention | K/V cache bytes per token | batch | µs/token |\n|---|---|---|---|\n", res.TimingRepeats)
		for _, r := range lm {
			for _, t := range r.Decode {
				p("| %s | %d | %d | %s |\n", rowLabel(r, res.Seeds), r.CacheBytesPerToken, t.Batch, spread(t.DecoderUS, t.DecoderUSMin, t.DecoderUSMax))
			}
		}
		p("\n")
	}
	if mt := rowsOf(res, "translate"); len(mt) > 0 {
		p("## Translation quality (layout of the paper's Table 1)\n\n")
		p("| attention | h | K/V heads | d_k | d_ff | params | valid ln PPL [95 %% CI] | test BLEU greedy [95 %% CI] | test BLEU beam 4 [95 %% CI] | p vs baseline | test chrF greedy | test chrF beam 4 [95 %% CI] |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range mt {
			p("| %s | %d | %d | %d | %d | %d | %.4f %s | %.2f %s | %.2f %s | %s | %.2f | %.2f %s |\n", rowLabel(r, res.Seeds), r.Heads, r.KVHeads, r.HeadDim, r.FFDim, r.Params,
				r.ValidNLL, ciPtr(r.LnPPLCI, 4), r.BLEUGreedy, ciPtr(r.BLEUGreedyCI, 2), r.BLEUBeam4, ciPtr(r.BLEUCI, 2), pValue(r.PairedPBLEU), r.ChrFGreedy, r.ChrFBeam4, ciPtr(r.ChrFCI, 2))
		}
		p("| *paper: multi-head* | 8 | 8 | 128 | 4096 | | *1.424 (dev)* | *26.7 (dev)* | | | | |\n| *paper: multi-query* | 8 | 1 | 128 | 5440 | | *1.439 (dev)* | *26.5 (dev)* | | | | |\n\n")
		p("BLEU on the first %d test sentences; `%s`; chrF `%s`; p: paired bootstrap test of beam-4 BLEU against the row's baseline (see above). The translations are in each model's run directory (`%s`, `%s`), the references in `%s`.\n\n",
			mt[0].BLEULines, res.BLEUSignature, res.ChrFSignature, hypothesesFile("greedy"), hypothesesFile("beam4"), testReferencesFile)
		p("## Speed (layout of the paper's Table 2: µs per output token)\n\n")
		p("Each decoding timing translates the first %s test sentences in one batch (batch 1: the first %s), %d times; cells are median (min–max) of the decoder, after the encoder's median.\n\n",
			seqsOf(mt[0], "greedy", false), seqsOf(mt[0], "greedy", true), res.TimingRepeats)
		p("| attention | training | greedy, batch %s: enc + dec | beam 4, batch %s: enc + dec | greedy, batch 1: enc + dec | beam 4, batch 1: enc + dec | K/V cache bytes per token |\n|---|---|---|---|---|---|---|\n",
			batchOf(mt[0], "greedy", false), batchOf(mt[0], "beam4", false))
		for _, r := range mt {
			p("| %s | %.1f | %s | %s | %s | %s | %d |\n", rowLabel(r, res.Seeds), r.TrainUSPerToken, encDec(r, "greedy", false), encDec(r, "beam4", false),
				encDec(r, "greedy", true), encDec(r, "beam4", true), r.CacheBytesPerToken)
		}
		p("| *paper: multi-head (TPUv2)* | *13.2* | *1.7 + 46* | *2.0 + 203* | | | |\n| *paper: multi-query (TPUv2)* | *13.0* | *1.5 + 3.8* | *1.6 + 32* | | | |\n\n")
		p("A batch decodes for as many steps as its longest hypothesis, so µs per output token also depends on how long each model's outputs run. The decoder's µs per sequence-step (steps × sequences × beams) does not:\n\n")
		p("| attention | greedy, batch %s | beam 4, batch %s | greedy, batch 1 | beam 4, batch 1 |\n|---|---|---|---|---|\n",
			batchOf(mt[0], "greedy", false), batchOf(mt[0], "beam4", false))
		for _, r := range mt {
			p("| %s | %s | %s | %s | %s |\n", rowLabel(r, res.Seeds), perStep(r, "greedy", false), perStep(r, "beam4", false), perStep(r, "greedy", true), perStep(r, "beam4", true))
		}
		p("\n")
	}
	if len(res.SeedSummary) > 0 {
		p("## Across seeds (mean ± standard deviation)\n\n| task | attention | seeds | valid ln PPL | test ln PPL | test BLEU beam 4 | test chrF beam 4 |\n|---|---|---|---|---|---|---|\n")
		for _, s := range res.SeedSummary {
			bl, ch := "–", "–"
			if s.BLEUBeam4 != nil {
				bl, ch = fmt.Sprintf("%.2f ± %.2f", s.BLEUBeam4.Mean, s.BLEUBeam4.Std), fmt.Sprintf("%.2f ± %.2f", s.ChrFBeam4.Mean, s.ChrFBeam4.Std)
			}
			p("| %s | %s | %d | %.4f ± %.4f | %.4f ± %.4f | %s | %s |\n", s.Task, s.Attention, s.Seeds, s.ValidLnPPL.Mean, s.ValidLnPPL.Std, s.TestLnPPL.Mean, s.TestLnPPL.Std, bl, ch)
		}
		p("\n")
	}
	p("## Training\n\nQuality and decoding are measured on each model's checkpoint with the best validation loss (on the first validation batches), not on the last step.\n\n")
	p("| task | attention | steps | dropout | final train loss | scored step | tokens/s | µs/token |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.Results {
		p("| %s | %s | %d | %.2f | %.4f | %d | %.0f | %.1f |\n", r.Task, rowLabel(r, res.Seeds), r.Steps, r.Dropout, r.FinalLoss, r.ScoredStep, r.TrainTokensPerS, r.TrainUSPerToken)
	}
	for i, r := range res.Results {
		if r.PeakGPUBytes > 0 {
			if i == 0 {
				p("\nPeak GPU memory while training (the executor's high-water mark):")
			}
			p(" %s %s %s;", r.Task, r.Attention, train.GiB(r.PeakGPUBytes))
		}
	}
	p("\n\n## Plots\n\n")
	for _, f := range plots {
		p("![%s](%s)\n\n", strings.TrimSuffix(f, ".png"), f)
	}
	p("Italic rows: %s. Checkpoints of every model are in this directory (`mqa eval -ckpt DIR`).\n", paperNote)
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

// rowLabel names a model in the tables: its attention, and its seed when there are several.
func rowLabel(r KindResult, seeds int) string {
	if seeds > 1 {
		return fmt.Sprintf("%s (seed %d)", r.Attention, r.Seed)
	}
	return r.Attention
}

// ci formats an interval with prec decimals.
func ci(iv stats.Interval, prec int) string {
	return fmt.Sprintf("[%.*f, %.*f]", prec, iv[0], prec, iv[1])
}

func ciPtr(iv *stats.Interval, prec int) string {
	if iv == nil {
		return "(too few units for an interval)"
	}
	return ci(*iv, prec)
}

func pValue(p *float64) string {
	if p == nil {
		return "–"
	}
	return fmt.Sprintf("%.3f", *p)
}

func orDash(x float64) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", x)
}

// spread formats a median with its range.
func spread(med, lo, hi float64) string {
	return fmt.Sprintf("%.1f (%.1f–%.1f)", med, lo, hi)
}

func rowsOf(res Results, task string) []KindResult {
	var out []KindResult
	for _, r := range res.Results {
		if r.Task == task {
			out = append(out, r)
		}
	}
	return out
}

// timing finds the decode timing of a mode at the small (batch 1) or the large batch.
func timing(r KindResult, mode string, small bool) (DecodeTiming, bool) {
	for _, t := range r.Decode {
		if t.Mode == mode && (t.Batch == 1) == small {
			return t, true
		}
	}
	return DecodeTiming{}, false
}

func batchOf(r KindResult, mode string, small bool) string {
	if t, ok := timing(r, mode, small); ok {
		return fmt.Sprint(t.Batch)
	}
	return "?"
}

func seqsOf(r KindResult, mode string, small bool) string {
	if t, ok := timing(r, mode, small); ok {
		return fmt.Sprint(t.Sequences)
	}
	return "?"
}

func encDec(r KindResult, mode string, small bool) string {
	t, ok := timing(r, mode, small)
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.1f + %s", t.EncoderUS, spread(t.DecoderUS, t.DecoderUSMin, t.DecoderUSMax))
}

// perStep is the decoder's µs per sequence-step of a translation timing.
func perStep(r KindResult, mode string, small bool) string {
	t, ok := timing(r, mode, small)
	if !ok || t.RowStepUS == 0 {
		return "–"
	}
	return spread(t.RowStepUS, t.RowStepUSMin, t.RowStepUSMax)
}

// summary says in plain sentences what quality MQA/GQA lost and what speed they bought,
// relative to MHA of the same seed, and calls a difference a difference only where its
// interval (quality) or the ranges of the repeated timings (speed) say so.
func summary(res Results) string {
	var lines []string
	baseline := false
	for _, task := range []string{"lm", "translate"} {
		rows := rowsOf(res, task)
		for i, r := range rows {
			if r.Attention == "mha" {
				baseline = true
			}
			if j := baselineIndex(rows, i); j >= 0 {
				lines = append(lines, compareRow(res, task, r, rows[j]))
			}
		}
		for _, st := range res.SeedSummary {
			if st.Task != task || st.Attention == "mha" {
				continue
			}
			base := seedBaseline(rows, st.Attention)
			for _, m := range res.SeedSummary {
				if m.Task == task && m.Attention == base {
					s := fmt.Sprintf("- %s, %s vs %s over %d seeds: validation ln-perplexity %.4f ± %.4f vs %.4f ± %.4f", task, st.Attention, base, st.Seeds,
						st.ValidLnPPL.Mean, st.ValidLnPPL.Std, m.ValidLnPPL.Mean, m.ValidLnPPL.Std)
					if st.BLEUBeam4 != nil && m.BLEUBeam4 != nil {
						s += fmt.Sprintf(", test BLEU (beam 4) %.2f ± %.2f vs %.2f ± %.2f", st.BLEUBeam4.Mean, st.BLEUBeam4.Std, m.BLEUBeam4.Mean, m.BLEUBeam4.Std)
					}
					lines = append(lines, s+" (mean ± standard deviation).")
				}
			}
		}
	}
	switch {
	case !baseline:
		return "No multi-head (mha) model was run, so there is no baseline to compare against."
	case len(lines) == 0:
		return "Only the multi-head model was run, so there is nothing to compare it with."
	}
	if note := stillImproving(res.Results, res.Seeds); note != "" {
		lines = append(lines, note)
	}
	if res.Seeds < 2 {
		lines = append(lines, "- The quality intervals cover the choice of test sentences (or documents) only, for models trained once: how much another seed would move them is not in the intervals (`-seeds N` measures it).")
	}
	if res.DecodeDevice != "cuda" {
		if res.Device == "cuda" {
			lines = append(lines, "- Training ran on the GPU; decoding (BLEU and every decode timing) ran on the host CPU (-decode-device cpu), so the decode columns are CPU timings.")
		}
		lines = append(lines, "- On a CPU the cached decode step is bound by arithmetic on the weights and the vocabulary projection, not by reading the K/V cache, so MQA's smaller cache buys memory but little speed; the paper's 12× decoder speed-up needs a memory-bound accelerator with large batches and contexts (see BENCHMARKS.md).")
	}
	return strings.Join(lines, "\n")
}

// seedBaseline is the attention label that the models labelled attn are compared against
// (see baselineIndex), "" when there is none.
func seedBaseline(rows []KindResult, attn string) string {
	for i, r := range rows {
		if r.Attention == attn {
			if j := baselineIndex(rows, i); j >= 0 {
				return rows[j].Attention
			}
		}
	}
	return ""
}

// stillImproving names the models whose validation loss was still falling when their
// training stopped (its lowest point the last, more than 0.5 % below the one before): the
// comparison is then of models that had not converged, and more steps would move it.
func stillImproving(rows []KindResult, seeds int) string {
	var names []string
	for _, r := range rows {
		v := r.ValidCurve
		if n := len(v); n >= 2 && v[n-1].Loss < v[n-2].Loss*(1-0.005) && slices.IndexFunc(v, func(p CurvePoint) bool { return p.Loss < v[n-1].Loss }) < 0 {
			names = append(names, fmt.Sprintf("%s %s (%+.1f %% over its last %d steps)", r.Task, rowLabel(r, seeds), 100*(v[n-1].Loss/v[n-2].Loss-1), v[n-1].Step-v[n-2].Step))
		}
	}
	if len(names) == 0 {
		return ""
	}
	return "- Still improving when training stopped (validation loss lowest at the last step): " + strings.Join(names, ", ") +
		". These models had not converged; more `-steps` would change them, and may change their differences."
}

// compareRow is the summary's sentence on one model against its baseline of the same seed,
// MHA or (for an uptrained model) MHA continued as long.
func compareRow(res Results, task string, r, mha KindResult) string {
	rel := (r.ValidNLL - mha.ValidNLL) / mha.ValidNLL * 100
	// Shazeer 2019: translation ln PPL 1.424 → 1.439 (+1.1 %), LM PPL 29.9 → 30.2 (+0.3 % in ln),
	// translation BLEU 26.7 → 26.5; quoted only where the two models differ in K/V heads.
	paperPPL, paperBLEU := "; the paper saw +1.1 %, WMT14 EN-DE", "; the paper saw −0.2 dev"
	if task == "lm" {
		paperPPL = "; the paper saw +0.3 %, Billion-Word LM"
	}
	if r.KVHeads == mha.KVHeads {
		paperPPL, paperBLEU = "", ""
	}
	name := r.Attention
	if res.Seeds > 1 {
		name = fmt.Sprintf("%s (seed %d)", r.Attention, r.Seed)
	}
	s := fmt.Sprintf("- %s, %s vs %s: validation ln-perplexity %.4f vs %.4f (%+.1f %%%s)%s",
		task, name, mha.Attention, r.ValidNLL, mha.ValidNLL, rel, paperPPL, verdict(r.LnPPLDiffCI, nil, 4, "higher: worse", "lower: better"))
	if task == "translate" {
		s += fmt.Sprintf("; test BLEU (beam 4) %.2f vs %.2f (%+.2f%s)%s", r.BLEUBeam4, mha.BLEUBeam4, r.BLEUBeam4-mha.BLEUBeam4, paperBLEU,
			verdict(r.BLEUDiffCI, r.PairedPBLEU, 2, "better", "worse"))
	}
	mode, what := "greedy", "cached greedy decoding"
	if task == "translate" {
		mode, what = "beam4", "beam-4 decoding" // beam search reorders the cache every step: it shows the cache's size more than greedy does
	}
	if t1, ok1 := timing(r, mode, false); ok1 {
		if t0, ok0 := timing(mha, mode, false); ok0 {
			if task == "translate" {
				s += fmt.Sprintf("; %s at batch %d: %s", what, t1.Batch, speedSentence(t0.RowStepUS, t0.RowStepUSMin, t0.RowStepUSMax, t1.RowStepUS, t1.RowStepUSMin, t1.RowStepUSMax, "µs per sequence-step", res.TimingRepeats))
			} else {
				s += fmt.Sprintf("; %s at batch %d: %s", what, t1.Batch, speedSentence(t0.DecoderUS, t0.DecoderUSMin, t0.DecoderUSMax, t1.DecoderUS, t1.DecoderUSMin, t1.DecoderUSMax, "µs per token", res.TimingRepeats))
			}
		}
	}
	return s + fmt.Sprintf("; K/V cache %d vs %d bytes per token; training %.1f vs %.1f µs per token (one run each).", r.CacheBytesPerToken, mha.CacheBytesPerToken, r.TrainUSPerToken, mha.TrainUSPerToken)
}

// verdict says what the paired interval of a difference (model − MHA) shows: a difference
// (up or down, described by the words given) only when the interval leaves out 0.
func verdict(diff *stats.Interval, p *float64, prec int, up, down string) string {
	if diff == nil {
		return "; too few sentences or documents to tell a difference from noise"
	}
	s := fmt.Sprintf("; difference 95 %% interval [%+.*f, %+.*f]", prec, diff[0], prec, diff[1])
	if p != nil {
		s += fmt.Sprintf(", paired bootstrap p = %.3f", *p)
	}
	switch {
	case diff[0] > 0:
		return s + ": " + up
	case diff[1] < 0:
		return s + ": " + down
	}
	return s + ": within noise"
}

// speedSentence compares the median timings of MHA (base) and another model (x), and calls
// one faster only when the min–max ranges of their repeated runs do not overlap.
func speedSentence(base, baseLo, baseHi, x, xLo, xHi float64, unit string, reps int) string {
	s := fmt.Sprintf("median %.1f vs %.1f %s (min–max %.1f–%.1f vs %.1f–%.1f over %d runs)", x, base, unit, xLo, xHi, baseLo, baseHi, reps)
	switch {
	case reps < 2:
		return s + ": one run each, so the noise is not measured"
	case xHi >= baseLo && baseHi >= xLo:
		return s + ": within noise"
	}
	return s + fmt.Sprintf(": %.2f× %s", speedup(base, x), fasterOrSlower(base, x))
}

func speedup(base, x float64) float64 {
	if x <= 0 || math.IsNaN(x) {
		return math.NaN()
	}
	if base >= x {
		return base / x
	}
	return x / base
}

func fasterOrSlower(base, x float64) string {
	if x <= base {
		return "faster"
	}
	return "slower"
}

// uptrainNote explains the uptrained rows of a comparison for its report ("" when there are none).
func uptrainNote(res Results) string {
	for _, r := range res.Results {
		if r.UptrainedFrom != nil {
			return fmt.Sprintf("rows marked \"uptrained\" are not trained from scratch: the mha model's scored checkpoint with the key/value heads of each group mean-pooled into one (Ainslie et al. 2023), then trained %d steps more (%.1f %% of %d) at mha's last learning rate after a short warmup; they keep mha's d_ff, so they have fewer parameters than the other rows, and their loss curves start where mha's scored checkpoint is. The row \"%s\" is the mha model trained on in the same way without pooling: the uptrained rows are compared against it, so that their differences are those of the pooling and not of the extra steps (its own comparison with mha shows what the extra steps alone bought)",
				r.Steps, 100*float64(r.Steps)/float64(res.Steps), res.Steps, continuedLabel(r.Steps))
		}
	}
	return ""
}
