package infer

import (
	"bytes"
	"strings"
	"testing"
)

func TestBench(t *testing.T) {
	cases := []struct {
		name string
		spec BenchSpec
	}{
		{"lm", BenchSpec{Preset: "tiny", Task: "lm", Vocab: 300, Attn: []string{"mha", "mqa"}, Batches: []int{2}, Contexts: []int{8}, Steps: 3, NoCache: true}},
		{"translate", BenchSpec{Preset: "tiny", Task: "translate", Vocab: 300, Attn: []string{"mha", "gqa:2", "mqa"}, Batches: []int{2}, Contexts: []int{8}, Beams: []int{1, 4}, Steps: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, err := Bench(c.spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			per := max(len(c.spec.Beams), 1) // rows per attention variant
			if want := len(c.spec.Attn) * per; len(rows) != want {
				t.Fatalf("%d rows, want %d", len(rows), want)
			}
			mha, mqa := rows[0], rows[len(rows)-per]
			if mha.Params != mqa.Params {
				t.Errorf("parameter counts differ: MHA %d, MQA %d", mha.Params, mqa.Params)
			}
			// tiny has 4 heads: MQA's cache is 4 times smaller.
			if mha.CacheBytes != 4*mqa.CacheBytes || mha.KVReadBytes != 4*mqa.KVReadBytes {
				t.Errorf("cache bytes MHA %d / MQA %d, read %d / %d: want a ratio of 4", mha.CacheBytes, mqa.CacheBytes, mha.KVReadBytes, mqa.KVReadBytes)
			}
			// 2 · layers 2 · batch 2 · 4 heads · (8+3 positions) · 16 · 4 bytes.
			if c.name == "lm" && mha.CacheBytes != 2*2*2*4*11*16*4 {
				t.Errorf("cache bytes %d", mha.CacheBytes)
			}
			for _, r := range rows {
				if r.StepUS <= 0 || (c.spec.NoCache && r.NoCacheUS <= 0) || (c.spec.Task == "translate" && r.EncoderUS <= 0) {
					t.Errorf("missing times: %+v", r)
				}
			}
			var buf bytes.Buffer
			if err := WriteBenchTable(&buf, rows); err != nil {
				t.Fatal(err)
			}
			if c.spec.Task == "translate" && !strings.Contains(buf.String(), "Table 2") {
				t.Errorf("no Table 2 layout:\n%s", buf.String())
			}
		})
	}
	bad := BenchSpec{Preset: "tiny", Task: "lm", Vocab: 300, Attn: []string{"mha"}, Batches: []int{1}, Contexts: []int{124}, Steps: 10} // tiny max_len is 128
	if _, err := Bench(bad, nil); err == nil {
		t.Error("context + steps over max_len: no error")
	}
}
