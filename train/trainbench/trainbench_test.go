package trainbench

import (
	"math"
	"strings"
	"testing"

	"mqa/layers"
	"mqa/models"
)

func TestConfig(t *testing.T) {
	lm, err := Config(models.TaskLM, "tiny", "mqa", 40, 12)
	if err != nil {
		t.Fatal(err)
	}
	if lm.KVHeads != 1 || lm.MaxLen != 12 || lm.Positions != layers.PosLearned || lm.TieEmbeddings || lm.Dropout != 0 {
		t.Errorf("LM config: kv %d, max_len %d, positions %s, tied %v, dropout %g; want 1, 12, learned, untied, 0",
			lm.KVHeads, lm.MaxLen, lm.Positions, lm.TieEmbeddings, lm.Dropout)
	}
	mha, err := Config(models.TaskLM, "tiny", "mha", 40, 12)
	if err != nil {
		t.Fatal(err)
	}
	if lm.FFDim <= mha.FFDim {
		t.Errorf("MQA d_ff %d, MHA %d: MQA must be widened to match the parameters", lm.FFDim, mha.FFDim)
	}
	preset, _ := models.Preset("tiny", models.TaskTranslate, 40)
	mt, err := Config(models.TaskTranslate, "tiny", "mha", 40, 12)
	if err != nil || mt.MaxLen != preset.MaxLen || mt.Positions != preset.Positions {
		t.Errorf("translation config keeps the preset's max_len and positions: %+v, %v", mt, err)
	}
	for _, c := range [][2]string{{"huge", "mha"}, {"tiny", "gqa:3"}} {
		if _, err := Config(models.TaskLM, c[0], c[1], 40, 12); err == nil {
			t.Errorf("Config(%s, %s) accepted", c[0], c[1])
		}
	}
}

func TestMathMode(t *testing.T) {
	for _, c := range []struct {
		tf32, bf16 bool
		want       string
	}{{false, false, "fp32"}, {true, false, "tf32"}, {false, true, "bf16"}, {true, true, "bf16"}} {
		if got := MathMode(c.tf32, c.bf16); got != c.want {
			t.Errorf("MathMode(%v, %v) = %s, want %s", c.tf32, c.bf16, got, c.want)
		}
	}
}

// TestRunLM trains a tiny LM on the CPU and checks what the result counts and reports.
func TestRunLM(t *testing.T) {
	t.Setenv("MQA_CUDA_MATH", "")
	cfg, err := Config(models.TaskLM, "tiny", "mha", 40, 6)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(Spec{Task: models.TaskLM, Preset: "tiny", Attn: "mha", Model: cfg, Device: "cpu", Ranks: 1,
		Batch: 2, Seq: 6, Warmup: 1, Steps: 2, Math: "fp32"})
	if err != nil {
		t.Fatal(err)
	}
	if res.TimedSteps != 2 || res.Tokens != 12 || res.FLOPs != LMFLOPs(cfg, 2, 6) || res.PeakOK || !(res.PerStep > 0) {
		t.Errorf("result %+v: want 2 timed steps of 12 tokens, %g FLOPs, no peak memory", res, LMFLOPs(cfg, 2, 6))
	}
	if math.Abs(res.First-math.Log(40)) > 1.5 {
		t.Errorf("first loss %g, want near log(40) = %.2f at initialisation", res.First, math.Log(40))
	}
	f := res.Fields()
	if f["batch"] != 2 || f["seq"] != 6 || f["steps"] != 2 || f["device"] != "cpu" || f["params"] != cfg.ParamCount() {
		t.Errorf("fields %v", f)
	}
	if _, ok := f["task"]; ok {
		t.Errorf("LM fields hold task %v", f["task"])
	}
	if s := res.Summary(); !strings.HasPrefix(s, "train cpu tiny mha batch 2×6, BLAS ") {
		t.Errorf("summary %q", s)
	}
}

// TestTranslateFLOPs checks the count on a model whose every term is easy to write down.
func TestTranslateFLOPs(t *testing.T) {
	cfg := models.Config{Dim: 2, Heads: 1, HeadDim: 2, KVHeads: 1, FFDim: 4, Layers: 1, EncoderLayers: 1, Vocab: 10}
	s := models.Shape{Batch: 1, SrcLen: 3, TgtLen: 2}
	// per layer: self = 2·2+2·2·2+2·2 = 16; encoder (16+16)·3 = 96; decoder
	// (16+4+4+16)·2 + 2·2·2·3 = 104, head 2·10·2 = 40; attention 4·2·(9+4+6) = 152.
	want := 3 * (2*(96+104+40) + 152.0)
	if got := TranslateFLOPs(cfg, s); got != want {
		t.Errorf("TranslateFLOPs = %g, want %g", got, want)
	}
	lm := LMFLOPs(cfg, 1, 2)
	// per token 16+16 + 20 = 52, two tokens; attention 1·2·2·1·2·2·2 = 32.
	if want := 3 * (2*52*2 + 32.0); lm != want {
		t.Errorf("LMFLOPs = %g, want %g", lm, want)
	}
}

func TestPrepare(t *testing.T) {
	lm := Spec{Task: models.TaskLM, Preset: "tiny", Attn: "mha", Seq: 8, Steps: 2, Warmup: 0}
	mt := Spec{Task: models.TaskTranslate, Preset: "tiny", Attn: "mqa", Repeat: 1}
	for _, c := range []struct {
		name           string
		s              Spec
		vocab          int
		shapes, errMsg string
	}{
		{"lm", lm, 50, "", ""},
		{"translation", mt, 50, "2x5x4,3x7x6", ""},
		{"vocab too small", lm, 3, "", "-vocab 3 must be in 4..1048576"},
		{"unknown preset", Spec{Task: models.TaskLM, Preset: "huge", Attn: "mha", Seq: 8, Steps: 1}, 50, "", `unknown preset "huge"`},
		{"no timed steps", Spec{Task: models.TaskLM, Preset: "tiny", Attn: "mha", Seq: 8}, 50, "", "-steps 0 must be positive"},
		{"no shapes", mt, 50, "", "-task translate needs -shapes"},
		{"no visits", Spec{Task: models.TaskTranslate, Preset: "tiny", Attn: "mha"}, 50, "2x5x4", "-repeat 0 must be positive"},
		{"a shape too long", mt, 50, "2x5x129", `-shapes "2x5x129": "2x5x129" is longer than the preset's max_len 128`},
	} {
		s := c.s
		err := s.Prepare(c.vocab, c.shapes)
		if c.errMsg != "" {
			if err == nil || !strings.Contains(err.Error(), c.errMsg) {
				t.Errorf("%s: %v, want %q", c.name, err, c.errMsg)
			}
			continue
		}
		if err != nil || s.Model.Vocab != c.vocab || len(s.Shapes) != len(strings.Split(c.shapes, ",")) && c.shapes != "" {
			t.Errorf("%s: %v, model vocab %d, shapes %v", c.name, err, s.Model.Vocab, s.Shapes)
		}
	}
}
