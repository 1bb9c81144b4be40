package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mqa/data"
	"mqa/infer"
	"mqa/models"
)

// savedModel writes an untrained tiny LM of spec and a small tokenizer as a model
// directory, as a library user would.
func savedModel(t *testing.T, spec models.Spec) string {
	t.Helper()
	tok, err := data.TrainBPE([]string{"the cat sat on the mat", "a dog sat on a log"}, 280)
	if err != nil {
		t.Fatal(err)
	}
	spec.Preset, spec.Task, spec.Vocab = "tiny", models.TaskLM, tok.VocabSize()
	cfg, err := spec.Config()
	if err != nil {
		t.Fatal(err)
	}
	params, err := models.InitParams(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := (&infer.Model{Cfg: cfg, Params: params, Tok: tok}).Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestExportCommand(t *testing.T) {
	ckpt := savedModel(t, models.Spec{Attention: "mqa", Norm: "rms", Positions: "rope", Activation: "swiglu"})
	out := filepath.Join(t.TempDir(), "hf")
	if code, _ := capture(t, "export", "-ckpt", ckpt, "-format", "hf", "-out", out); code != 0 {
		t.Fatalf("export exited %d", code)
	}
	var conf map[string]any
	b, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil || json.Unmarshal(b, &conf) != nil {
		t.Fatalf("config.json: %v", err)
	}
	if conf["model_type"] != "llama" || conf["num_key_value_heads"] != 1.0 {
		t.Errorf("an MQA model exported as %v with %v K/V heads, want llama with 1", conf["model_type"], conf["num_key_value_heads"])
	}
	for _, f := range []string{"model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// -reference writes mqa's logits and greedy continuation; the continuation is mqa generate's.
	prompts := filepath.Join(t.TempDir(), "prompts.txt")
	if err := os.WriteFile(prompts, []byte("the cat\n\na dog sat\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := capture(t, "export", "-ckpt", ckpt, "-out", out, "-reference", prompts, "-max", "6"); code != 0 {
		t.Fatalf("export -reference exited %d", code)
	}
	var ref struct {
		Prompts []infer.Reference `json:"prompts"`
	}
	if b, err = os.ReadFile(filepath.Join(out, referenceFile)); err != nil || json.Unmarshal(b, &ref) != nil || len(ref.Prompts) != 2 {
		t.Fatalf("reference.json: %v, %d prompts", err, len(ref.Prompts))
	}
	m, err := infer.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ref.Prompts {
		if len(r.Logits) != len(r.IDs) || len(r.Logits[0]) != m.Cfg.Vocab || len(r.Greedy) == 0 || len(r.Greedy) > 6 {
			t.Errorf("%q: %d logit rows of %d for %d ids, %d greedy tokens", r.Text, len(r.Logits), len(r.Logits[0]), len(r.IDs), len(r.Greedy))
		}
		code, text := capture(t, "generate", "-ckpt", ckpt, "-prompt", r.Text, "-max", "6")
		if want := m.Tok.Decode(r.Greedy) + "\n"; code != 0 || text != want {
			t.Errorf("%q: mqa generate printed %q, the reference's greedy tokens are %q", r.Text, text, want)
		}
	}

	// A GQA model with LayerNorm has no exact Hugging Face architecture: exit 1, nothing written.
	refused := filepath.Join(t.TempDir(), "refused")
	if code, _ := capture(t, "export", "-ckpt", savedModel(t, models.Spec{Attention: "gqa:2"}), "-out", refused); code != 1 {
		t.Errorf("export of a LayerNorm GQA model exited %d, want 1", code)
	}
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Errorf("a refused export left %s behind", refused)
	}
	for _, args := range [][]string{{"export"}, {"export", "-ckpt", ckpt, "-out", out, "-format", "onnx"}} {
		if code, _ := capture(t, args...); code != 2 {
			t.Errorf("mqa %s exited %d, want 2", strings.Join(args, " "), code)
		}
	}
}
