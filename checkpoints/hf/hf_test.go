package hf

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/layers"
	"mqa/models"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// tinyLM is a small LM with the given settings; Dim 8 = 2 heads × 4.
func tinyLM(norm, positions, activation string, kvHeads int) models.Config {
	return models.Config{Task: models.TaskLM, Vocab: 300, Dim: 8, Layers: 2, Heads: 2, KVHeads: kvHeads, HeadDim: 4,
		FFDim: 12, Activation: activation, Norm: norm, Positions: positions, MaxLen: 16, TieEmbeddings: true}
}

// exportCases are the supported settings, each with its architecture and golden file.
func exportCases() []struct {
	name, arch string
	cfg        models.Config
} {
	untied := func(c models.Config) models.Config { c.TieEmbeddings, c.Bias = false, true; return c }
	gqa := tinyLM("rms", "rope", "swiglu", 2)
	gqa.Dim, gqa.Heads = 16, 4
	return []struct {
		name, arch string
		cfg        models.Config
	}{
		{"llama-mha", Llama, tinyLM("rms", "rope", "swiglu", 2)},
		{"llama-gqa2", Llama, gqa},
		{"llama-mqa-untied-bias", Llama, untied(tinyLM("rms", "rope", "swiglu", 1))},
		{"gpt2-sinusoidal-relu", GPT2, tinyLM("layer", "sinusoidal", "relu", 2)},
		{"gpt2-learned-gelu-untied-bias", GPT2, untied(tinyLM("layer", "learned", "gelu", 2))},
		{"gpt_bigcode-mqa", GPTBigCode, tinyLM("layer", "learned", "gelu", 1)},
	}
}

func params(t *testing.T, cfg models.Config) *layers.Params {
	t.Helper()
	p, err := models.InitParams(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTensorsGolden pins the exported tensor names and shapes of each supported setting.
func TestTensorsGolden(t *testing.T) {
	for _, tc := range exportCases() {
		t.Run(tc.name, func(t *testing.T) {
			arch, err := Architecture(tc.cfg)
			if err != nil || arch != tc.arch {
				t.Fatalf("Architecture = %q, %v; want %q", arch, err, tc.arch)
			}
			ts, err := Tensors(tc.cfg, params(t, tc.cfg))
			if err != nil {
				t.Fatal(err)
			}
			var sb strings.Builder
			for _, x := range ts {
				fmt.Fprintf(&sb, "%s %v\n", x.Name, x.Shape)
				if n := shapeSize(x.Shape); n != len(x.Data) {
					t.Errorf("%s: shape %v but %d values", x.Name, x.Shape, len(x.Data))
				}
			}
			path := filepath.Join("testdata", tc.name+".tensors.golden")
			if *update {
				if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if sb.String() != string(want) {
				t.Errorf("tensors differ from %s:\n%s", path, sb.String())
			}
		})
	}
}

func shapeSize(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// TestConfigGolden checks the config.json entries that decide the computation.
func TestConfigGolden(t *testing.T) {
	for _, tc := range exportCases() {
		t.Run(tc.name, func(t *testing.T) {
			c := Config(tc.cfg, tc.arch)
			want := map[string]any{"model_type": tc.arch, "vocab_size": 300, "tie_word_embeddings": tc.cfg.TieEmbeddings,
				"eos_token_id": 2, "bos_token_id": 1, "pad_token_id": 0}
			switch tc.arch {
			case Llama:
				for k, v := range map[string]any{"hidden_size": tc.cfg.Dim, "intermediate_size": 12, "num_hidden_layers": 2,
					"num_attention_heads": tc.cfg.Heads, "num_key_value_heads": tc.cfg.KVHeads, "head_dim": 4, "hidden_act": "silu",
					"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 16,
					"attention_bias": tc.cfg.Bias, "mlp_bias": tc.cfg.Bias} {
					want[k] = v
				}
			default:
				for k, v := range map[string]any{"n_embd": 8, "n_inner": 12, "n_layer": 2, "n_head": 2, "n_positions": 16,
					"layer_norm_epsilon": 1e-5, "activation_function": tc.cfg.Activation} {
					want[k] = v
				}
				if tc.arch == GPTBigCode {
					want["multi_query"] = true
				}
			}
			for k, v := range want {
				if fmt.Sprint(c[k]) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v", k, c[k], v)
				}
			}
			if cls := c["architectures"].([]string)[0]; cls != architectureClass[tc.arch] {
				t.Errorf("architectures = %v", c["architectures"])
			}
		})
	}
}

// tensorByName finds an exported tensor.
func tensorByName(t *testing.T, ts []checkpoints.Tensor, name string) checkpoints.Tensor {
	t.Helper()
	for _, x := range ts {
		if x.Name == name {
			return x
		}
	}
	t.Fatalf("no tensor %s", name)
	return checkpoints.Tensor{}
}

// TestTensorValues checks the layouts: transposes, the SwiGLU split, the fused c_attn,
// the √d embedding and the folded final norm.
func TestTensorValues(t *testing.T) {
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-6*math.Max(1, math.Abs(float64(b))) }
	sqrtD := math.Sqrt(8)

	cfg := tinyLM("rms", "rope", "swiglu", 1)
	p := params(t, cfg)
	ts, err := Tensors(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) []float32 { return p.Get(name).Data().([]float32) }
	emb, embHF := get("embed.weight"), tensorByName(t, ts, "model.embed_tokens.weight").Data
	if !near(embHF[37], float32(float64(emb[37])*sqrtD)) {
		t.Errorf("embed_tokens[37] = %g, want √8 × %g", embHF[37], emb[37])
	}
	// k_proj [kv·dk, d] = mqa's k [d, kv·dk] transposed: element (r, c) = k[c, r].
	k, kHF := get("layers.1.self_attn.k.weight"), tensorByName(t, ts, "model.layers.1.self_attn.k_proj.weight")
	if kHF.Shape[0] != 4 || kHF.Shape[1] != 8 || kHF.Data[3*8+5] != k[5*4+3] {
		t.Errorf("k_proj %v: (3,5) = %g, want k[5,3] = %g", kHF.Shape, kHF.Data[3*8+5], k[5*4+3])
	}
	// gate_proj row r = fc1 column r; up_proj row r = fc1 column 12+r.
	fc1 := get("layers.0.ffn.fc1.weight") // [8, 24]
	gate, up := tensorByName(t, ts, "model.layers.0.mlp.gate_proj.weight").Data, tensorByName(t, ts, "model.layers.0.mlp.up_proj.weight").Data
	if gate[2*8+6] != fc1[6*24+2] || up[2*8+6] != fc1[6*24+12+2] {
		t.Errorf("gate/up (2,6) = %g/%g, want fc1[6,2] = %g and fc1[6,14] = %g", gate[2*8+6], up[2*8+6], fc1[6*24+2], fc1[6*24+14])
	}
	norm, normHF := get("norm.weight"), tensorByName(t, ts, "model.norm.weight").Data
	if !near(normHF[3], float32(float64(norm[3])/sqrtD)) {
		t.Errorf("tied model.norm[3] = %g, want %g / √8", normHF[3], norm[3])
	}

	cfg = tinyLM("layer", "learned", "gelu", 1)
	p = params(t, cfg)
	if ts, err = Tensors(cfg, p); err != nil {
		t.Fatal(err)
	}
	// GPTBigCode c_attn [d + 2·dk, d]: rows 0..7 are q's columns, 8..11 k's, 12..15 v's.
	q, v := get("layers.0.self_attn.q.weight"), get("layers.0.self_attn.v.weight")
	cattn := tensorByName(t, ts, "transformer.h.0.attn.c_attn.weight")
	if cattn.Shape[0] != 16 || cattn.Data[1*8+2] != q[2*8+1] || cattn.Data[(12+3)*8+2] != v[2*4+3] {
		t.Errorf("c_attn %v does not hold q and v where GPTBigCode reads them", cattn.Shape)
	}
	if b := tensorByName(t, ts, "transformer.h.0.attn.c_attn.bias").Data; len(b) != 16 || b[5] != 0 {
		t.Errorf("c_attn.bias of a model without biases = %v, want 16 zeros", b)
	}

	cfg = tinyLM("layer", "sinusoidal", "relu", 2)
	if ts, err = Tensors(cfg, params(t, cfg)); err != nil {
		t.Fatal(err)
	}
	// GPT-2's Conv1D keeps mqa's [in, out]; the sinusoidal table becomes wpe.
	wpe := tensorByName(t, ts, "transformer.wpe.weight").Data
	if want := math.Cos(3 / math.Pow(10000, 2.0/8)); !near(wpe[3*8+3], float32(want)) {
		t.Errorf("wpe[3,3] = %g, want cos(3/10000^(2/8)) = %g", wpe[3*8+3], want)
	}
}

func TestArchitectureRefusals(t *testing.T) {
	window := tinyLM("rms", "rope", "swiglu", 2)
	window.Window = 4
	translate := tinyLM("rms", "rope", "swiglu", 2)
	translate.Task, translate.EncoderLayers = models.TaskTranslate, 2
	gqa := tinyLM("layer", "learned", "gelu", 2)
	gqa.Dim, gqa.Heads = 16, 4
	tests := []struct {
		name string
		cfg  models.Config
		want string
	}{
		{"rms with sinusoidal", tinyLM("rms", "sinusoidal", "swiglu", 2), "-norm rms -positions sinusoidal -activation swiglu -attn mha"},
		{"layer norm with rope", tinyLM("layer", "rope", "gelu", 2), "-norm layer -positions rope"},
		{"swiglu with layer norm", tinyLM("layer", "learned", "swiglu", 2), "-activation swiglu"},
		{"gqa with layer norm", gqa, "-attn gqa:2"},
		{"window", window, "window 4"},
		{"translation", translate, "T5Gemma"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Architecture(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.cfg.Task == models.TaskLM && !strings.Contains(err.Error(), "-norm rms -positions rope -activation swiglu") {
				t.Errorf("refusal %q does not name the settings that export", err)
			}
			if _, err := Export(t.TempDir(), tc.cfg, params(t, tc.cfg), nil); err == nil {
				t.Error("Export did not refuse")
			}
		})
	}
}

// TestExportDirectory writes a whole directory and reads each file back.
func TestExportDirectory(t *testing.T) {
	tok, err := data.TrainBPE([]string{"the cat sat on the mat", "the dog sat"}, 270)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyLM("rms", "rope", "swiglu", 1)
	out := filepath.Join(t.TempDir(), "hf")
	arch, err := Export(out, cfg, params(t, cfg), tok)
	if err != nil || arch != Llama {
		t.Fatalf("Export = %q, %v", arch, err)
	}
	var conf map[string]any
	b, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil || json.Unmarshal(b, &conf) != nil || conf["num_key_value_heads"] != 1.0 {
		t.Fatalf("config.json: %v, num_key_value_heads = %v", err, conf["num_key_value_heads"])
	}
	var tc map[string]any
	b, _ = os.ReadFile(filepath.Join(out, "tokenizer_config.json"))
	if json.Unmarshal(b, &tc) != nil || tc["eos_token"] != "</s>" || tc["add_bos_token"] != false {
		t.Fatalf("tokenizer_config.json: %s", b)
	}
	back, err := data.LoadTokenizer(filepath.Join(out, "tokenizer.json"))
	if err != nil || back.VocabSize() != tok.VocabSize() {
		t.Fatalf("tokenizer.json: %v", err)
	}
	ts, meta, err := checkpoints.ReadSafetensors(filepath.Join(out, "model.safetensors"))
	if err != nil || meta["format"] != "pt" || len(ts) != 1+2*9+1 {
		t.Fatalf("model.safetensors: %v, metadata %v, %d tensors", err, meta, len(ts))
	}
	for _, f := range []string{"generation_config.json", "special_tokens_map.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

// The tanh-approximate GELU exports as transformers' "gelu_new", the same formula.
func TestConfigGELUTanh(t *testing.T) {
	cfg := tinyLM("layer", "learned", "gelu_tanh", 2)
	arch, err := Architecture(cfg)
	if err != nil || arch != GPT2 {
		t.Fatalf("Architecture = %q, %v; want %q", arch, err, GPT2)
	}
	if got := Config(cfg, arch)["activation_function"]; got != "gelu_new" {
		t.Errorf("activation_function = %v, want gelu_new", got)
	}
}
