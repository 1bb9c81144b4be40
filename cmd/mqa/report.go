package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"mqa/checkpoints"
)

// Shazeer 2019's figures, for the report's side-by-side tables (WMT14 EN-DE, TPUv2).
const paperNote = "Shazeer 2019, WMT14 EN-DE (Table 1, Table 2 on TPUv2) and the Billion-Word LM (Table 3): different data and hardware"

// writeReport writes results.json, the plots and report.md into dir.
func writeReport(dir string, res compareResults) error {
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
	p("- command: `%s`\n- date: %s\n- machine: %s (training on %s, decoding on %s)\n- preset: %s, %d training steps per model, seed %d, same data order for every model\n",
		res.Command, res.Date, res.Machine, res.Device, res.DecodeDevice, res.Preset, res.Steps, res.Seed)
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
	if res.EvalBatches > 0 {
		p("- **perplexities are of the first %d validation and test batches only** (-eval-batches)\n", res.EvalBatches)
	}
	p("\n")
	p("## What the numbers say\n\n%s\n\n", summary(res))

	if lm := rowsOf(res, "lm"); len(lm) > 0 {
		p("## Language modelling (layout of the paper's Table 3)\n\n")
		p("| attention | h | K/V heads | d_k | d_ff | params | valid ln PPL | test PPL (token) | test PPL (word) |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range lm {
			p("| %s | %d | %d | %d | %d | %d | %.4f | %.2f | %.2f |\n", r.Attention, r.Heads, r.KVHeads, r.HeadDim, r.FFDim, r.Params, r.ValidNLL, r.TestPPL, r.TestWordPPL)
		}
		p("| *paper: multi-head* | | | | | | | | *29.9 (dev)* |\n| *paper: multi-query* | | | | | | | | *30.2 (dev)* |\n\n")
		p("Decoding speed (cached, greedy, µs per generated token):\n\n| attention | K/V cache bytes per token | batch | µs/token |\n|---|---|---|---|\n")
		for _, r := range lm {
			for _, t := range r.Decode {
				p("| %s | %d | %d | %.1f |\n", r.Attention, r.CacheBytesPerToken, t.Batch, t.DecoderUS)
			}
		}
		p("\n")
	}
	if mt := rowsOf(res, "translate"); len(mt) > 0 {
		p("## Translation quality (layout of the paper's Table 1)\n\n")
		p("| attention | h | K/V heads | d_k | d_ff | params | valid ln PPL | test BLEU greedy | test BLEU beam 4 | test chrF greedy | test chrF beam 4 |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range mt {
			p("| %s | %d | %d | %d | %d | %d | %.4f | %.2f | %.2f | %.2f | %.2f |\n", r.Attention, r.Heads, r.KVHeads, r.HeadDim, r.FFDim, r.Params,
				r.ValidNLL, r.BLEUGreedy, r.BLEUBeam4, r.ChrFGreedy, r.ChrFBeam4)
		}
		p("| *paper: multi-head* | 8 | 8 | 128 | 4096 | | *1.424 (dev)* | *26.7 (dev)* | | | |\n| *paper: multi-query* | 8 | 1 | 128 | 5440 | | *1.439 (dev)* | *26.5 (dev)* | | | |\n\n")
		p("BLEU on the first %d test sentences; `%s`; chrF `%s`.\n\n", mt[0].BLEULines, res.BLEUSignature, res.ChrFSignature)
		p("## Speed (layout of the paper's Table 2: µs per output token)\n\n")
		p("| attention | training | greedy, batch %s: enc + dec | beam 4, batch %s: enc + dec | greedy, batch 1: enc + dec | beam 4, batch 1: enc + dec | K/V cache bytes per token |\n|---|---|---|---|---|---|---|\n",
			batchOf(mt[0], "greedy", false), batchOf(mt[0], "beam4", false))
		for _, r := range mt {
			p("| %s | %.1f | %s | %s | %s | %s | %d |\n", r.Attention, r.TrainUSPerToken, encDec(r, "greedy", false), encDec(r, "beam4", false),
				encDec(r, "greedy", true), encDec(r, "beam4", true), r.CacheBytesPerToken)
		}
		p("| *paper: multi-head (TPUv2)* | *13.2* | *1.7 + 46* | *2.0 + 203* | | | |\n| *paper: multi-query (TPUv2)* | *13.0* | *1.5 + 3.8* | *1.6 + 32* | | | |\n\n")
		p("A batch decodes for as many steps as its longest hypothesis, so µs per output token also depends on how long each model's outputs run. The decoder's µs per sequence-step (steps × sequences × beams) does not:\n\n")
		p("| attention | greedy, batch %s | beam 4, batch %s | greedy, batch 1 | beam 4, batch 1 |\n|---|---|---|---|---|\n",
			batchOf(mt[0], "greedy", false), batchOf(mt[0], "beam4", false))
		for _, r := range mt {
			p("| %s | %s | %s | %s | %s |\n", r.Attention, perStep(r, "greedy", false), perStep(r, "beam4", false), perStep(r, "greedy", true), perStep(r, "beam4", true))
		}
		p("\n")
	}
	p("## Training\n\nQuality and decoding are measured on each model's checkpoint with the best validation loss (on the first validation batches), not on the last step.\n\n")
	p("| task | attention | steps | dropout | final train loss | scored step | tokens/s | µs/token |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.Results {
		p("| %s | %s | %d | %.2f | %.4f | %d | %.0f | %.1f |\n", r.Task, r.Attention, r.Steps, r.Dropout, r.FinalLoss, r.ScoredStep, r.TrainTokensPerS, r.TrainUSPerToken)
	}
	p("\n## Plots\n\n")
	for _, f := range plots {
		p("![%s](%s)\n\n", strings.TrimSuffix(f, ".png"), f)
	}
	p("Italic rows: %s. Checkpoints of every model are in this directory (`mqa eval -ckpt DIR`).\n", paperNote)
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

func rowsOf(res compareResults, task string) []kindResult {
	var out []kindResult
	for _, r := range res.Results {
		if r.Task == task {
			out = append(out, r)
		}
	}
	return out
}

// timing finds the decode timing of a mode at the small (batch 1) or the large batch.
func timing(r kindResult, mode string, small bool) (decodeTiming, bool) {
	for _, t := range r.Decode {
		if t.Mode == mode && (t.Batch == 1) == small {
			return t, true
		}
	}
	return decodeTiming{}, false
}

func batchOf(r kindResult, mode string, small bool) string {
	if t, ok := timing(r, mode, small); ok {
		return fmt.Sprint(t.Batch)
	}
	return "?"
}

func encDec(r kindResult, mode string, small bool) string {
	t, ok := timing(r, mode, small)
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.1f + %.1f", t.EncoderUS, t.DecoderUS)
}

// perStep is the decoder's µs per sequence-step of a translation timing.
func perStep(r kindResult, mode string, small bool) string {
	t, ok := timing(r, mode, small)
	if !ok || t.RowStepUS == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", t.RowStepUS)
}

// summary says in plain sentences what quality MQA/GQA lost and what speed they bought,
// relative to MHA, from the measured numbers.
func summary(res compareResults) string {
	var lines []string
	baseline := false
	for _, task := range []string{"lm", "translate"} {
		rows := rowsOf(res, task)
		var mha *kindResult
		for i := range rows {
			if rows[i].Attention == "mha" {
				mha = &rows[i]
			}
		}
		if mha == nil {
			continue
		}
		baseline = true
		for _, r := range rows {
			if r.Attention == "mha" {
				continue
			}
			rel := (r.ValidNLL - mha.ValidNLL) / mha.ValidNLL * 100
			// Shazeer 2019: translation ln PPL 1.424 → 1.439 (+1.1 %), LM PPL 29.9 → 30.2 (+0.3 % in ln).
			paper := "+1.1 %, WMT14 EN-DE"
			if task == "lm" {
				paper = "+0.3 %, Billion-Word LM"
			}
			s := fmt.Sprintf("- %s, %s vs mha: validation ln-perplexity %.4f vs %.4f (%+.1f %%; the paper saw %s)", task, r.Attention, r.ValidNLL, mha.ValidNLL, rel, paper)
			if task == "translate" {
				s += fmt.Sprintf(", test BLEU (beam 4) %.2f vs %.2f (%+.2f; the paper saw −0.2 dev)", r.BLEUBeam4, mha.BLEUBeam4, r.BLEUBeam4-mha.BLEUBeam4)
			}
			mode := "greedy"
			if t1, ok1 := timing(r, mode, false); ok1 {
				t0, ok0 := timing(*mha, mode, false)
				switch {
				case ok0 && t1.RowStepUS > 0 && t0.RowStepUS > 0:
					s += fmt.Sprintf("; cached greedy decoding at batch %d: %.1f vs %.1f µs per sequence-step (%.2f× %s; per output token %.1f vs %.1f, which also depends on how long each model's outputs run: a batch takes as many steps as its longest)",
						t1.Batch, t1.RowStepUS, t0.RowStepUS, speedup(t0.RowStepUS, t1.RowStepUS), fasterOrSlower(t0.RowStepUS, t1.RowStepUS), t1.DecoderUS, t0.DecoderUS)
				case ok0 && t1.DecoderUS > 0:
					s += fmt.Sprintf("; cached greedy decoding at batch %d: %.1f vs %.1f µs per token (%.2f× %s)", t1.Batch, t1.DecoderUS, t0.DecoderUS,
						speedup(t0.DecoderUS, t1.DecoderUS), fasterOrSlower(t0.DecoderUS, t1.DecoderUS))
				}
			}
			// beam search reorders the cache every step, so it shows the cache's size more than greedy does
			if t1, ok1 := timing(r, "beam4", false); ok1 && t1.RowStepUS > 0 {
				if t0, ok0 := timing(*mha, "beam4", false); ok0 && t0.RowStepUS > 0 {
					s += fmt.Sprintf("; beam 4 at batch %d: %.1f vs %.1f µs per sequence-step (%.2f× %s)", t1.Batch, t1.RowStepUS, t0.RowStepUS,
						speedup(t0.RowStepUS, t1.RowStepUS), fasterOrSlower(t0.RowStepUS, t1.RowStepUS))
				}
			}
			s += fmt.Sprintf("; K/V cache %d vs %d bytes per token; training %.1f vs %.1f µs per token.", r.CacheBytesPerToken, mha.CacheBytesPerToken, r.TrainUSPerToken, mha.TrainUSPerToken)
			lines = append(lines, s)
		}
	}
	switch {
	case !baseline:
		return "No multi-head (mha) model was run, so there is no baseline to compare against."
	case len(lines) == 0:
		return "Only the multi-head model was run, so there is nothing to compare it with."
	}
	if res.DecodeDevice != "cuda" {
		if res.Device == "cuda" {
			lines = append(lines, "- Training ran on the GPU; decoding (BLEU and every decode timing) ran on the host CPU (-decode-device cpu), so the decode columns are CPU timings.")
		}
		lines = append(lines, "- On a CPU the cached decode step is bound by arithmetic on the weights and the vocabulary projection, not by reading the K/V cache, so MQA's smaller cache buys memory but little speed; the paper's 12× decoder speed-up needs a memory-bound accelerator with large batches and contexts (see BENCHMARKS.md).")
	}
	return strings.Join(lines, "\n")
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
