package main

import (
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	mha := kindResult{Task: "translate", Attention: "mha", ValidNLL: 2.0, BLEUBeam4: 20, CacheBytesPerToken: 1024, TrainUSPerToken: 6,
		Decode: []decodeTiming{{Mode: "greedy", Batch: 32, DecoderUS: 100}}}
	mqa := kindResult{Task: "translate", Attention: "mqa", ValidNLL: 2.02, BLEUBeam4: 19.5, CacheBytesPerToken: 256, TrainUSPerToken: 5,
		Decode: []decodeTiming{{Mode: "greedy", Batch: 32, DecoderUS: 25}}}
	cases := []struct {
		name  string
		rows  []kindResult
		wants []string
	}{
		{"mha only", []kindResult{mha}, []string{"Only the multi-head model"}},
		{"no mha", []kindResult{mqa}, []string{"No multi-head (mha) model"}},
		{"mqa vs mha", []kindResult{mha, mqa}, []string{"translate, mqa vs mha", "2.0200 vs 2.0000 (+1.0 %", "19.50 vs 20.00 (-0.50",
			"25.0 vs 100.0 µs per token (4.00× faster)", "256 vs 1024 bytes"}},
	}
	// with sequence-step timings (translation), those are compared
	stepped := func(r kindResult, us, beamUS float64) kindResult {
		r.Decode = []decodeTiming{{Mode: "greedy", Batch: 32, DecoderUS: r.Decode[0].DecoderUS, DecoderSteps: 40, RowStepUS: us},
			{Mode: "beam4", Batch: 32, DecoderUS: 3 * r.Decode[0].DecoderUS, DecoderSteps: 40, RowStepUS: beamUS}}
		return r
	}
	cases = append(cases, struct {
		name  string
		rows  []kindResult
		wants []string
	}{"per sequence-step", []kindResult{stepped(mha, 80, 5.1), stepped(mqa, 40, 2.3)}, []string{
		"40.0 vs 80.0 µs per sequence-step (2.00× faster; per output token 25.0 vs 100.0",
		"; beam 4 at batch 32: 2.3 vs 5.1 µs per sequence-step (2.22× faster)"}})
	for _, c := range cases {
		got := summary(compareResults{Results: c.rows})
		for _, w := range c.wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s: summary lacks %q:\n%s", c.name, w, got)
			}
		}
	}
}
