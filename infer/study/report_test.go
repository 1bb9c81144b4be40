package study

import (
	"strings"
	"testing"

	"mqa/infer/stats"
	"mqa/train/rundata"
)

// TestSummary: the summary calls a difference a difference only when its interval leaves out
// 0 (quality) or the timings' ranges do not overlap (speed), and says "within noise" otherwise.
func TestSummary(t *testing.T) {
	p := func(x float64) *float64 { return &x }
	iv := func(lo, hi float64) *stats.Interval { return &stats.Interval{lo, hi} }
	timings := func(us, lo, hi float64) []DecodeTiming {
		return []DecodeTiming{{Mode: "beam4", Batch: 32, DecoderUS: us, RowStepUS: us, RowStepUSMin: lo, RowStepUSMax: hi}}
	}
	mha := KindResult{Task: "translate", Attention: "mha", Seed: 1, KVHeads: 8, ValidNLL: 2.0, BLEUBeam4: 20, CacheBytesPerToken: 1024, TrainUSPerToken: 6,
		Decode: timings(80, 78, 83)}
	worse := KindResult{Task: "translate", Attention: "mqa", Seed: 1, KVHeads: 1, ValidNLL: 2.1, BLEUBeam4: 17, CacheBytesPerToken: 256, TrainUSPerToken: 5,
		LnPPLDiffCI: iv(0.05, 0.15), BLEUDiffCI: iv(-4.1, -1.9), PairedPBLEU: p(0.001), Decode: timings(40, 39, 42)}
	noise := KindResult{Task: "translate", Attention: "gqa:2", Seed: 1, KVHeads: 2, ValidNLL: 2.01, BLEUBeam4: 19.5, CacheBytesPerToken: 512, TrainUSPerToken: 5.5,
		LnPPLDiffCI: iv(-0.02, 0.04), BLEUDiffCI: iv(-1.6, 0.7), PairedPBLEU: p(0.31), Decode: timings(79, 76, 81)}
	up := KindResult{Task: "translate", Attention: uptrainedLabel("mqa", 30), Seed: 1, KVHeads: 1, Steps: 30, UptrainedFrom: &rundata.UptrainSource{Step: 100},
		ValidNLL: 1.9, LnPPLDiffCI: iv(0.01, 0.03)}
	cont := KindResult{Task: "translate", Attention: continuedLabel(30), Seed: 1, KVHeads: 8, Steps: 30, UptrainedFrom: &rundata.UptrainSource{Step: 100},
		ValidNLL: 1.88, LnPPLDiffCI: iv(-0.2, -0.1)}
	cases := []struct {
		name  string
		rows  []KindResult
		wants []string
	}{
		{"uptrained against the continued mha", []KindResult{mha, cont, up}, []string{"translate, mqa (uptrained from mha, 30 steps) vs mha (continued, 30 steps): validation ln-perplexity 1.9000 vs 1.8800 (+1.1 %; the paper saw",
			"translate, mha (continued, 30 steps) vs mha: validation ln-perplexity 1.8800 vs 2.0000 (-6.0 %); difference"}},
		{"mha only", []KindResult{mha}, []string{"Only the multi-head model"}},
		{"no mha", []KindResult{worse}, []string{"No multi-head (mha) model"}},
		{"a real difference", []KindResult{mha, worse}, []string{"translate, mqa vs mha", "2.1000 vs 2.0000 (+5.0 %; the paper saw +1.1 %",
			"interval [+0.0500, +0.1500]: higher: worse", "17.00 vs 20.00 (-3.00", "[-4.10, -1.90], paired bootstrap p = 0.001: worse",
			"median 40.0 vs 80.0 µs per sequence-step (min–max 39.0–42.0 vs 78.0–83.0 over 5 runs): 2.00× faster", "256 vs 1024 bytes"}},
		{"noise", []KindResult{mha, noise}, []string{"[-0.0200, +0.0400]: within noise", "paired bootstrap p = 0.310: within noise",
			"(min–max 76.0–81.0 vs 78.0–83.0 over 5 runs): within noise"}},
	}
	for _, c := range cases {
		got := summary(Results{Results: c.rows, TimingRepeats: 5, Seeds: 1})
		for _, w := range c.wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s: summary lacks %q:\n%s", c.name, w, got)
			}
		}
		if c.name == "noise" && (strings.Contains(got, "faster") || strings.Contains(got, "worse") || strings.Contains(got, "better")) {
			t.Errorf("noise called a difference:\n%s", got)
		}
	}
}

// TestBaselineIndex: each row is compared with the MHA model of its seed, and an uptrained
// row with the MHA model continued as long when there is one (results written before the
// continued model existed fall back to MHA).
func TestBaselineIndex(t *testing.T) {
	from := &rundata.UptrainSource{Step: 40}
	row := func(attn string, seed uint64, uptrained bool) KindResult {
		r := KindResult{Task: "translate", Attention: attn, Seed: seed, Steps: 10}
		if uptrained {
			r.UptrainedFrom = from
		}
		return r
	}
	rows := []KindResult{row("mha", 1, false), row("mha", 2, false), row("mqa", 1, false), row("mqa", 2, false),
		row(continuedLabel(10), 1, true), row(continuedLabel(10), 2, true), row(uptrainedLabel("mqa", 10), 1, true), row(uptrainedLabel("mqa", 10), 2, true)}
	old := []KindResult{row("mha", 1, false), row(uptrainedLabel("mqa", 10), 1, true)}
	cases := []struct {
		name string
		rows []KindResult
		i    int
		want int
	}{
		{"mha has none", rows, 0, -1},
		{"from scratch, seed 1", rows, 2, 0},
		{"from scratch, seed 2", rows, 3, 1},
		{"continued mha against mha", rows, 5, 1},
		{"uptrained against continued, seed 1", rows, 6, 4},
		{"uptrained against continued, seed 2", rows, 7, 5},
		{"old results: uptrained against mha", old, 1, 0},
		{"no mha of that seed", rows[2:3], 0, -1},
	}
	for _, c := range cases {
		if got := baselineIndex(c.rows, c.i); got != c.want {
			t.Errorf("%s: baseline %d, want %d", c.name, got, c.want)
		}
	}
}

// TestStillImproving: a model whose validation loss was lowest, and still falling by more
// than 0.5 %, at its last step is named; one that flattened, rose or has too short a curve
// is not.
func TestStillImproving(t *testing.T) {
	curve := func(losses ...float64) []CurvePoint {
		var c []CurvePoint
		for i, l := range losses {
			c = append(c, CurvePoint{Step: 100 * (i + 1), Loss: l})
		}
		return c
	}
	cases := []struct {
		name  string
		curve []CurvePoint
		want  string
	}{
		{"falling", curve(4, 3, 2.5, 2.4), "lm mha (-4.0 % over its last 100 steps)"},
		{"flat", curve(4, 3, 2.5, 2.499), ""},
		{"rose", curve(4, 2.4, 2.5, 2.45), ""},
		{"one point", curve(2.4), ""},
	}
	for _, c := range cases {
		got := stillImproving([]KindResult{{Task: "lm", Attention: "mha", ValidCurve: c.curve}}, 1)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want it to name %q", c.name, got, c.want)
		}
	}
}
