package hf_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"mqa/checkpoints/hf"
	"mqa/data"
	"mqa/models"
)

// ExampleExport writes a multi-query model with RMSNorm, rotary positions and SwiGLU as a
// Hugging Face Llama directory: transformers' AutoModelForCausalLM and AutoTokenizer load
// it as it is, and it keeps its single K/V head.
func ExampleExport() {
	tok, err := data.TrainBPE([]string{"the cat sat on the mat"}, 270)
	if err != nil {
		panic(err)
	}
	cfg, err := models.Spec{Preset: "tiny", Task: models.TaskLM, Vocab: tok.VocabSize(), Attention: "mqa",
		Norm: "rms", Positions: "rope", Activation: "swiglu"}.Config()
	if err != nil {
		panic(err)
	}
	params, err := models.InitParams(cfg, 1) // or a trained model's weights
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "mqa-hf")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	arch, err := hf.Export(dir, cfg, params, tok)
	if err != nil {
		panic(err)
	}
	var conf struct {
		Architectures []string `json:"architectures"`
		KVHeads       int      `json:"num_key_value_heads"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || json.Unmarshal(b, &conf) != nil {
		panic(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	fmt.Println(arch, conf.Architectures[0], "with", conf.KVHeads, "K/V head")
	for _, f := range files {
		fmt.Println(filepath.Base(f))
	}
	// A LayerNorm model with two K/V heads has no exact Hugging Face architecture.
	gqa, _ := models.Spec{Preset: "tiny", Task: models.TaskLM, Vocab: tok.VocabSize(), Attention: "gqa:2"}.Config()
	_, err = hf.Architecture(gqa)
	fmt.Println(err != nil)
	// Output:
	// llama LlamaForCausalLM with 1 K/V head
	// config.json
	// generation_config.json
	// model.safetensors
	// special_tokens_map.json
	// tokenizer.json
	// tokenizer_config.json
	// true
}
