package models

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/checkpoints"
	"mqa/layers"
)

func logitsOf(t *testing.T, cfg Config, p *layers.Params) []float32 {
	t.Helper()
	g, err := Build(p, cfg, Shape{Batch: 2, SrcLen: 4, TgtLen: 3}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.FeedTranslation([]int{5, 6, 7, 8, 9, 5, 0, 0}, []int{4, 2}, []int{1, 4, 3, 1, 2, 2}, []int{4, 3, 2, 2, 2, 0}); err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g.G)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), g.Logits.Value().Data().([]float32)...)
}

func TestSaveLoadIdenticalLogits(t *testing.T) {
	cfg := handMT
	p := layers.NewParams(tensor.Float32, 3)
	before := logitsOf(t, cfg, p)
	dir := t.TempDir()
	if err := SaveModel(dir, cfg, p); err != nil {
		t.Fatal(err)
	}
	cfg2, p2, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg2 != cfg {
		t.Fatalf("config changed: %+v", cfg2)
	}
	after := logitsOf(t, cfg2, p2)
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("logit %d: %g before saving, %g after loading", i, before[i], after[i])
		}
	}
}

func TestLoadMismatch(t *testing.T) {
	dir := t.TempDir()
	p := layers.NewParams(tensor.Float32, 3)
	logitsOf(t, handMT, p)
	if err := SaveModel(dir, handMT, p); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		edit  func()
		wants []string
	}{
		{"wider config", func() {
			c := handMT
			c.FFDim = 9
			must(t, checkpoints.WriteJSON(filepath.Join(dir, checkpoints.ConfigFile), c))
		}, []string{"ffn.fc1.weight has shape [4 8], the config needs [4 9]"}},
		{"missing tensor", func() {
			must(t, checkpoints.WriteJSON(filepath.Join(dir, checkpoints.ConfigFile), handMT))
			ts := Tensors(p, "")
			must(t, checkpoints.SaveSafetensors(filepath.Join(dir, checkpoints.WeightsFile), ts[1:], nil))
		}, []string{"missing " + ts0(p)}},
		{"bad config", func() {
			must(t, os.WriteFile(filepath.Join(dir, checkpoints.ConfigFile), []byte(`{"task":"lm","heads":4,"kv_heads":3}`), 0o644))
		}, []string{"config.json", "not divisible"}},
	}
	for _, c := range cases {
		c.edit()
		_, _, err := LoadModel(dir)
		for _, w := range c.wants {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to mention %q", c.name, err, w)
			}
		}
	}
}

func ts0(p *layers.Params) string { return p.Names()[0] }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
