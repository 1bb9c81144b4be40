package models

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers"
	"mqa/layers/gradcheck"
)

// handLM: vocab 10, d 4, 1 layer, 2 heads over 1 K/V head of width 2, d_ff 8, ReLU,
// LayerNorm, sinusoidal, tied, no bias.
var handLM = Config{Task: TaskLM, Vocab: 10, Dim: 4, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 2, FFDim: 8,
	Activation: "relu", Norm: "layer", Positions: "sinusoidal", MaxLen: 6, TieEmbeddings: true}

// handMT: the same widths as an encoder–decoder with MHA, RMSNorm, learned positions
// (max_len 5), an untied head and biases.
var handMT = Config{Task: TaskTranslate, Vocab: 10, Dim: 4, Layers: 1, EncoderLayers: 1, Heads: 2, KVHeads: 2, HeadDim: 2,
	FFDim: 8, Activation: "relu", Norm: "rms", Positions: "learned", MaxLen: 5, Bias: true}

func TestParamCountByHand(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want int
	}{
		// embed 10·4 = 40; attention q 4·4 + k 4·2 + v 4·2 + o 4·4 = 48; ffn 4·8 + 8·4 = 64;
		// two LayerNorms 2·8 = 16; final LayerNorm 8. Total 176.
		{"lm", handLM, 176},
		// embed 40 + head 40 + two learned position tables 2·5·4 = 40 → 120;
		// attention with biases 4·(16+4) = 80; ffn 4·8+8 + 8·4+4 = 76; RMSNorm 4;
		// encoder 80 + 76 + 2·4 + final 4 = 168; decoder 2·80 + 76 + 3·4 + final 4 = 252.
		// Total 540.
		{"translate", handMT, 540},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.cfg.ParamCount(); got != c.want {
				t.Errorf("formula: %d parameters, counted by hand %d", got, c.want)
			}
			p := layers.NewParams(tensor.Float32, 1)
			shape := Shape{Batch: 2, TgtLen: 3}
			if c.cfg.Task == TaskTranslate {
				shape.SrcLen = 4
			}
			if _, err := Build(p, c.cfg, shape, Options{}); err != nil {
				t.Fatal(err)
			}
			if p.Count() != c.want {
				t.Errorf("built model has %d parameters, counted by hand %d", p.Count(), c.want)
			}
		})
	}
}

func TestMatchedFFDim(t *testing.T) {
	base, err := Preset("base", TaskLM, 8192)
	if err != nil {
		t.Fatal(err)
	}
	paper, err := Preset("paper", TaskTranslate, 32000)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		kv   int
		want int
	}{
		{"base lm mqa", base, 1, 2496},          // 2048 + (512 − 64)
		{"base lm gqa2", base, 2, 2432},         // 2048 + (512 − 128)
		{"base lm mha", base, 8, 2048},          // unchanged
		{"paper translate mqa", paper, 1, 5440}, // Shazeer's 4096 → 5440
	}
	for _, c := range cases {
		if got := c.cfg.MatchedFFDim(c.kv); got != c.want {
			t.Errorf("%s: d_ff %d, want %d", c.name, got, c.want)
		}
	}
	// Matched models have (nearly) the same parameter count as the MHA model.
	for _, cfg := range []Config{base, paper} {
		mqa, err := cfg.WithKVHeads(1, true)
		if err != nil {
			t.Fatal(err)
		}
		diff := float64(mqa.ParamCount()-cfg.ParamCount()) / float64(cfg.ParamCount())
		if diff > 1e-4 || diff < -1e-4 {
			t.Errorf("%s: matched MQA has %d parameters, MHA %d", cfg.Task, mqa.ParamCount(), cfg.ParamCount())
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"heads not divisible", func(c *Config) { c.KVHeads = 3; c.Heads = 4 }, "not divisible"},
		{"task", func(c *Config) { c.Task = "tagging" }, "allowed: lm, translate"},
		{"activation", func(c *Config) { c.Activation = "tanh" }, "allowed: relu, gelu, gelu_tanh, swiglu"},
		{"positions", func(c *Config) { c.Positions = "alibi" }, "allowed: sinusoidal"},
		{"dropout", func(c *Config) { c.Dropout = 1 }, "dropout"},
		{"zero dim", func(c *Config) { c.Dim = 0 }, "dim = 0"},
	}
	for _, c := range cases {
		cfg := handLM
		c.mutate(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	if _, err := ParseConfig([]byte(`{"task":"lm","bogus":1}`), "config.json"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown field: %v", err)
	}
	good, err := json.Marshal(handLM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tail := range []string{"]", "}", "{}", "1"} {
		if _, err := ParseConfig(append(good, tail...), "config.json"); err == nil || !strings.Contains(err.Error(), "trailing data") {
			t.Errorf("config followed by %q: %v, want a trailing-data error", tail, err)
		}
	}
	if _, err := Preset("huge", TaskLM, 100); err == nil || !strings.Contains(err.Error(), "tiny") {
		t.Errorf("unknown preset: %v", err)
	}
	for _, spec := range []string{"gqa:3", "gqa:x", "mmq", "gqa:0"} {
		if _, err := ParseAttention(spec, 4); err == nil {
			t.Errorf("attention %q accepted for 4 heads", spec)
		}
	}
	if g, err := ParseAttention("gqa:2", 4); err != nil || g != 2 {
		t.Errorf("gqa:2 → %d, %v", g, err)
	}
}

// TestModelGradients checks the gradient of the whole model's loss by finite differences.
func TestModelGradients(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"lm mqa", handLM},
		{"translate mha", handMT},
		{"translate gqa swiglu rope", func() Config {
			c := handMT
			c.Heads, c.KVHeads, c.Activation, c.Positions, c.Norm = 4, 2, "swiglu", "rope", "layer"
			return c
		}()},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := gradcheck.Run(func() (*G.Node, []*G.Node, error) {
				p := layers.NewParams(tensor.Float64, uint64(i))
				shape := Shape{Batch: 2, TgtLen: 3}
				if c.cfg.Task == TaskTranslate {
					shape.SrcLen = 4
				}
				mg, err := Build(p, c.cfg, shape, Options{LabelSmoothing: 0.1})
				if err != nil {
					return nil, nil, err
				}
				rng := rand.New(rand.NewPCG(uint64(i), 4))
				tok := func(n int) []int {
					xs := make([]int, n)
					for j := range xs {
						xs[j] = 1 + rng.IntN(c.cfg.Vocab-1)
					}
					return xs
				}
				if c.cfg.Task == TaskTranslate {
					tgt := tok(6)
					tgt[5] = PadID
					err = mg.FeedTranslation(tok(8), []int{4, 2}, tok(6), tgt)
				} else {
					err = mg.FeedLM(tok(6), tok(6))
				}
				return mg.Loss, mg.ParamNodes(), err
			}, 6, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if res.Checked == 0 || res.MaxRelErr > 1e-5 {
				t.Errorf("max relative error %.3g over %d elements at %s", res.MaxRelErr, res.Checked, res.Where)
			}
		})
	}
}

// TestPresetTraining: every preset has training defaults whose data fit its model (windows
// and translation lengths at most max_len) and positive sizes; an unknown name has none.
func TestPresetTraining(t *testing.T) {
	for _, name := range Presets() {
		tr, ok := PresetTraining(name)
		cfg, err := Preset(name, TaskTranslate, tr.Vocab)
		if !ok || err != nil {
			t.Fatalf("%s: training defaults %v, config error %v", name, ok, err)
		}
		if tr.SeqLen > cfg.MaxLen || tr.MaxLen > cfg.MaxLen {
			t.Errorf("%s: seq %d / max-len %d over the model's max_len %d", name, tr.SeqLen, tr.MaxLen, cfg.MaxLen)
		}
		if tr.Batch < 1 || tr.MaxTokens < tr.MaxLen || tr.Steps < 1 || tr.LR <= 0 || tr.CompareSteps < 1 || tr.DecodeBatch < 1 || tr.BLEULines < 0 {
			t.Errorf("%s: %+v", name, tr)
		}
	}
	if _, ok := PresetTraining("huge"); ok {
		t.Error("an unknown preset has training defaults")
	}
}
