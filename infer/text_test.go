package infer

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/models"
)

// saveCheckpoint writes a random-weight model of cfg (vocab = a small BPE's) with its
// tokenizer into a new directory.
func saveCheckpoint(t *testing.T, cfg models.Config) string {
	t.Helper()
	tok, err := data.TrainBPE([]string{"the cat sat on the mat", "a dog ran in the park", "das ist gut"}, 300)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Vocab = tok.VocabSize()
	dir := t.TempDir()
	if err := models.SaveModel(dir, cfg, randomParams(t, cfg, 3)); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(filepath.Join(dir, checkpoints.TokenizerFile)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGenerateText(t *testing.T) {
	dir := saveCheckpoint(t, with(smallLM, func(c *models.Config) { c.KVHeads = 1 }))
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, noCache := range []bool{false, true} {
		b, _ := NewCPU(m.Cfg, m.Params, noCache)
		text, err := GenerateText(b, m.Tok, "the cat", 12, Sampling{Temperature: 0.9, TopK: 20, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, text)
	}
	if texts[0] != texts[1] {
		t.Errorf("cached %q, uncached %q", texts[0], texts[1])
	}
	b, _ := NewCPU(m.Cfg, m.Params, false)
	if _, err := GenerateText(b, m.Tok, "", 5, Sampling{}); err != nil {
		t.Errorf("empty prompt: %v", err)
	}
	long := strings.Repeat("x y ", 100)
	if _, err := GenerateText(b, m.Tok, long, 5, Sampling{}); err == nil || !strings.Contains(err.Error(), "max_len") {
		t.Errorf("long prompt: %v", err)
	}
	if _, err := TranslateLines(b, m.Tok, m.Tok, []string{"a"}, TranslateOptions{Beam: 1, Batch: 1}); err == nil || !strings.Contains(err.Error(), "generate") {
		t.Errorf("translate with an LM: %v", err)
	}
}

func TestTranslateLines(t *testing.T) {
	dir := saveCheckpoint(t, with(smallMT, func(c *models.Config) { c.KVHeads = 2 }))
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{"the cat sat", "", "a dog ran in the park today", strings.Repeat("das ", 80), "gut"}
	var warned []string
	var results [][]string
	for _, c := range []struct {
		noCache     bool
		beam, batch int
	}{{false, 1, 2}, {true, 1, 3}, {false, 3, 2}, {true, 3, 4}} {
		b, _ := NewCPU(m.Cfg, m.Params, c.noCache)
		progress := 0
		out, err := TranslateLines(b, m.SrcTok, m.Tok, lines, TranslateOptions{Beam: c.beam, Alpha: 0.6, Batch: c.batch, MaxLen: 12,
			Progress: func(n int) { progress = n }, Warn: func(s string) { warned = append(warned, s) }})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != len(lines) || out[1] != "" || progress != len(lines) {
			t.Fatalf("%+v: %d outputs for %d lines (empty line → %q), progress %d", c, len(out), len(lines), out[1], progress)
		}
		for _, o := range out {
			if strings.ContainsAny(o, "\r\n") {
				t.Errorf("output %q spans lines", o)
			}
		}
		results = append(results, out)
	}
	for i := 0; i < 4; i += 2 {
		if strings.Join(results[i], "|") != strings.Join(results[i+1], "|") {
			t.Errorf("cached %q, uncached %q", results[i], results[i+1])
		}
	}
	if len(warned) == 0 || !strings.Contains(warned[0], "line 4") {
		t.Errorf("no truncation warning for line 4: %v", warned)
	}
	b, _ := NewCPU(m.Cfg, m.Params, false)
	if _, err := TranslateLines(b, m.SrcTok, m.Tok, lines, TranslateOptions{Beam: 0, Batch: 1}); err == nil {
		t.Error("beam 0: no error")
	}
	if _, err := GenerateText(b, m.Tok, "x", 3, Sampling{}); err == nil || !strings.Contains(err.Error(), "translate") {
		t.Errorf("generate with a translation model: %v", err)
	}
}

// TestGenerateSamples: sample k of each prompt is GenerateText's with seed Seed+k, on one
// line, the prompts in order.
func TestGenerateSamples(t *testing.T) {
	m, err := Load(saveCheckpoint(t, smallLM))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewCPU(m.Cfg, m.Params, false)
	opt := Sampling{Temperature: 1, Seed: 5}
	var got []string
	if err := GenerateSamples(b, m.Tok, []string{"the cat", "a dog"}, 2, 8, opt, func(s string) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range []string{"the cat", "a dog"} {
		for k := range 2 {
			o := opt
			o.Seed += uint64(k)
			text, err := GenerateText(b, m.Tok, p, 8, o)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", " "), "\n", " "))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("samples %q, want %q", got, want)
	}
	if want[0] == want[1] && want[2] == want[3] {
		t.Errorf("the two seeds gave the same samples %q: the test shows nothing", want)
	}
	for _, s := range got {
		if strings.ContainsAny(s, "\n") {
			t.Errorf("sample %q holds a line break", s)
		}
	}
}
