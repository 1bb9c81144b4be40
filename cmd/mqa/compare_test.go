package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/infer/study"
)

// TestCompareEndToEnd runs a small comparison and checks every output.
func TestCompareEndToEnd(t *testing.T) {
	out := t.TempDir()
	args := []string{"compare", "-preset", "tiny", "-steps", "4", "-bleu-lines", "10", "-decode-batch", "5", "-eval-batches", "2", "-timing-reps", "2", "-out", out}
	if code := run(args); code != 0 {
		t.Fatalf("mqa %s exited with %d", strings.Join(args, " "), code)
	}
	var res study.Results
	if err := checkpoints.ReadJSON(filepath.Join(out, "results.json"), &res, 1<<26); err != nil {
		t.Fatal(err)
	}
	kinds := []string{"mha", "gqa:2", "mqa"}
	if len(res.Results) != 2*len(kinds) {
		t.Fatalf("%d results, want %d", len(res.Results), 2*len(kinds))
	}
	params := map[string]int{}
	for _, r := range res.Results {
		positive := map[string]float64{"train_us_per_token": r.TrainUSPerToken, "valid_nll": r.ValidNLL, "valid_ppl": r.ValidPPL,
			"test_nll": r.TestNLL, "test_ppl": r.TestPPL, "final_train_loss": r.FinalLoss, "kv_cache_bytes_per_token": float64(r.CacheBytesPerToken)}
		for name, v := range positive {
			if !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("%s %s: %s = %v", r.Task, r.Attention, name, v)
			}
		}
		if len(r.TrainCurve) != 4 || len(r.ValidCurve) == 0 {
			t.Errorf("%s %s: %d training and %d validation points", r.Task, r.Attention, len(r.TrainCurve), len(r.ValidCurve))
		}
		wantTimings := 2
		if r.Task == "translate" {
			wantTimings = 4
			if r.BLEULines != 10 || r.BLEUGreedy < 0 || r.ChrFGreedy < 0 {
				t.Errorf("translate %s: BLEU on %d lines, %v / chrF %v", r.Attention, r.BLEULines, r.BLEUGreedy, r.ChrFGreedy)
			}
		}
		if r.LnPPLCI == nil || !r.LnPPLCI.Contains(r.ValidNLL) || r.TestLnPPLCI == nil || !r.TestLnPPLCI.Contains(r.TestNLL) || r.ValidUnits < study.MinUnits || r.TestUnits < study.MinUnits {
			t.Errorf("%s %s: ln PPL %v in %v over %d units, test %v in %v over %d", r.Task, r.Attention, r.ValidNLL, r.LnPPLCI, r.ValidUnits, r.TestNLL, r.TestLnPPLCI, r.TestUnits)
		}
		if r.Task == "lm" && !(r.TestWordPPL > r.TestPPL) {
			t.Errorf("lm %s: word perplexity %v under -eval-batches, token perplexity %v", r.Attention, r.TestWordPPL, r.TestPPL)
		}
		if r.Task == "translate" && (r.BLEUCI == nil || !r.BLEUCI.Contains(r.BLEUBeam4) || r.ChrFCI == nil || !r.ChrFCI.Contains(r.ChrFBeam4)) {
			t.Errorf("translate %s: BLEU %v in %v, chrF %v in %v", r.Attention, r.BLEUBeam4, r.BLEUCI, r.ChrFBeam4, r.ChrFCI)
		}
		if paired := r.Task == "translate" && r.Attention != "mha"; paired != (r.PairedPBLEU != nil) || (paired && !(*r.PairedPBLEU > 0 && *r.PairedPBLEU <= 1)) {
			t.Errorf("%s %s: paired bootstrap p %v", r.Task, r.Attention, r.PairedPBLEU)
		}
		if (r.Attention != "mha") != (r.LnPPLDiffCI != nil) {
			t.Errorf("%s %s: ln PPL difference interval %v", r.Task, r.Attention, r.LnPPLDiffCI)
		}
		if len(r.Decode) != wantTimings {
			t.Errorf("%s %s: %d decode timings, want %d", r.Task, r.Attention, len(r.Decode), wantTimings)
		}
		for _, d := range r.Decode {
			if !(d.DecoderUS > 0) || d.OutputTokens == 0 || d.Repeats != 2 || !(d.DecoderUSMin <= d.DecoderUS && d.DecoderUS <= d.DecoderUSMax) {
				t.Errorf("%s %s: decode timing %+v", r.Task, r.Attention, d)
			}
		}
		if p, ok := params[r.Task]; ok && p != r.Params {
			t.Errorf("%s %s has %d parameters, mha %d: not parameter-matched", r.Task, r.Attention, r.Params, p)
		}
		params[r.Task] = r.Params
		if r.ScoredStep < 1 || r.ScoredStep > 4 || r.ScoredCheckpoint == "" {
			t.Errorf("%s %s: scored checkpoint %q at step %d", r.Task, r.Attention, r.ScoredCheckpoint, r.ScoredStep)
		}
		if _, err := os.Stat(filepath.Join(r.Checkpoint, "model.safetensors")); err != nil {
			t.Errorf("%s %s: checkpoint: %v", r.Task, r.Attention, err)
		}
		if r.Task == "translate" {
			checkHypotheses(t, out, filepath.Dir(r.Checkpoint), r)
		}
	}
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"Table 1", "Table 2", "Table 3"} {
		table := tableAfter(string(report), section)
		for _, k := range kinds {
			if !strings.Contains(table, "| "+k+" |") {
				t.Errorf("the %s table lacks %s", section, k)
			}
		}
	}
	if res.Version.Go == "" || res.TimingRepeats != 2 || res.Resamples != 1000 {
		t.Errorf("results.json: version %+v, %d timing repeats, %d resamples", res.Version, res.TimingRepeats, res.Resamples)
	}
	if strings.Contains(tableAfter(string(report), "Table 3"), "| 0.00 |") {
		t.Error("the LM table prints a perplexity of 0.00")
	}
	for _, name := range []string{"lm-loss.png", "lm-quality-speed.png", "translate-loss.png", "translate-quality-speed.png"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Bounds().Dx() < 300 || img.Bounds().Dy() < 200 {
			t.Errorf("%s is only %v", name, img.Bounds())
		}
		if !strings.Contains(string(report), "]("+name+")") {
			t.Errorf("report.md does not show %s", name)
		}
	}
}

// checkHypotheses: a translation model's test translations are in its run directory, one a
// line beside the sources and references, and scoring them again with mqa bleu (sacreBLEU's
// computation) gives the report's BLEU and chrF.
func checkHypotheses(t *testing.T, out, run string, r study.KindResult) {
	t.Helper()
	for _, name := range []string{"translate-test.src.txt", "translate-test.ref.txt", "test.greedy.txt", "test.beam4.txt"} {
		dir := run
		if strings.HasPrefix(name, "translate-") {
			dir = out
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || bytes.Count(b, []byte("\n")) != r.BLEULines {
			t.Errorf("%s: %d lines (%v), want %d", name, bytes.Count(b, []byte("\n")), err, r.BLEULines)
		}
	}
	for _, c := range []struct {
		mode       string
		bleu, chrf float64
	}{{"greedy", r.BLEUGreedy, r.ChrFGreedy}, {"beam4", r.BLEUBeam4, r.ChrFBeam4}} {
		code, js := capture(t, "bleu", "-ref", filepath.Join(out, "translate-test.ref.txt"), "-hyp", filepath.Join(run, "test."+c.mode+".txt"), "-json")
		var got struct{ BLEU, ChrF float64 }
		if code != 0 || json.Unmarshal([]byte(js), &got) != nil || got.BLEU != c.bleu || got.ChrF != c.chrf {
			t.Errorf("%s %s: mqa bleu on its hypotheses says %q (exit %d); the report BLEU %v, chrF %v", r.Attention, c.mode, js, code, c.bleu, c.chrf)
		}
	}
}

// tableAfter returns the first markdown table after the heading that mentions section.
func tableAfter(report, section string) string {
	i := strings.Index(report, section)
	if i < 0 {
		return ""
	}
	rest := report[i:]
	start := strings.Index(rest, "\n|")
	if start < 0 {
		return ""
	}
	end := strings.Index(rest[start+1:], "\n\n")
	if end < 0 {
		return rest[start:]
	}
	return rest[start : start+1+end]
}

// TestCompareSeeds trains two seeds per kind: each non-MHA model is paired with the MHA
// model of its seed, and the seed summary holds mean ± standard deviation of the two.
func TestCompareSeeds(t *testing.T) {
	out := t.TempDir()
	args := []string{"compare", "-tasks", "lm", "-attn", "mha,mqa", "-seeds", "2", "-seed", "5", "-steps", "2", "-decode-batch", "2",
		"-eval-batches", "2", "-timing-reps", "1", "-quiet", "-out", out}
	if code := run(args); code != 0 {
		t.Fatalf("mqa %s exited with %d", strings.Join(args, " "), code)
	}
	var res study.Results
	if err := checkpoints.ReadJSON(filepath.Join(out, "results.json"), &res, 1<<26); err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 4 || res.Seeds != 2 {
		t.Fatalf("%d results with %d seeds, want 4 with 2", len(res.Results), res.Seeds)
	}
	valid := map[string][]float64{}
	for _, r := range res.Results {
		valid[r.Attention] = append(valid[r.Attention], r.ValidNLL)
		if r.Seed != 5 && r.Seed != 6 {
			t.Errorf("%s trained with seed %d, want 5 or 6", r.Attention, r.Seed)
		}
		if _, err := os.Stat(filepath.Join(out, fmt.Sprintf("lm-%s-seed%d", r.Attention, r.Seed))); err != nil {
			t.Errorf("no run directory for %s seed %d: %v", r.Attention, r.Seed, err)
		}
	}
	if valid["mha"][0] == valid["mha"][1] {
		t.Errorf("both MHA seeds give validation ln PPL %v: the seed changes nothing", valid["mha"][0])
	}
	if len(res.SeedSummary) != 2 {
		t.Fatalf("seed summary %+v", res.SeedSummary)
	}
	for _, s := range res.SeedSummary {
		xs := valid[s.Attention]
		mean, std := (xs[0]+xs[1])/2, math.Abs(xs[0]-xs[1])/math.Sqrt2
		if s.Seeds != 2 || math.Abs(s.ValidLnPPL.Mean-mean) > 1e-12 || math.Abs(s.ValidLnPPL.Std-std) > 1e-12 {
			t.Errorf("%s: %+v, want %v ± %v", s.Attention, s.ValidLnPPL, mean, std)
		}
	}
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mqa (seed 6) vs mha", "Across seeds", "| mha (seed 5) |"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}
