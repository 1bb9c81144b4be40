package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/layers"
	"mqa/models"
)

// TokenizerConfig returns tokenizer_config.json: the tokenizer.json as it is (no BOS or
// EOS added, as mqa's Encode adds none), the special tokens, and special-token strings in
// text encoded as plain text, as mqa encodes them.
func TokenizerConfig(cfg models.Config) map[string]any {
	pad, bos, eos := data.SpecialTokens()
	return map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"bos_token":                    bos,
		"eos_token":                    eos,
		"pad_token":                    pad,
		"add_bos_token":                false,
		"add_eos_token":                false,
		"split_special_tokens":         true,
		"clean_up_tokenization_spaces": false,
		"model_max_length":             cfg.MaxLen,
	}
}

// Export writes a language model as a Hugging Face model directory out (created if
// needed): config.json, generation_config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json and special_tokens_map.json. It returns the architecture used, or
// the refusal of Architecture. Each file is written atomically.
func Export(out string, cfg models.Config, params *layers.Params, tok *data.Tokenizer) (string, error) {
	arch, err := Architecture(cfg)
	if err != nil {
		return "", fmt.Errorf("hf: export: %w", err)
	}
	if tok.VocabSize() > cfg.Vocab {
		return "", fmt.Errorf("hf: export: the tokenizer has %d tokens, more than the model's vocabulary %d", tok.VocabSize(), cfg.Vocab)
	}
	ts, err := Tensors(cfg, params)
	if err != nil {
		return "", err
	}
	tokJSON, err := tok.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("hf: export: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("hf: export: %w", err)
	}
	pad, bos, eos := data.SpecialTokens()
	files := []struct {
		name  string
		value any
	}{
		{"config.json", Config(cfg, arch)},
		{"generation_config.json", GenerationConfig(cfg)},
		{"tokenizer_config.json", TokenizerConfig(cfg)},
		{"special_tokens_map.json", map[string]string{"bos_token": bos, "eos_token": eos, "pad_token": pad}},
	}
	for _, f := range files {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(f.value); err != nil {
			return "", fmt.Errorf("hf: export %s: %w", f.name, err)
		}
		if err := writeFile(filepath.Join(out, f.name), b.Bytes()); err != nil {
			return "", err
		}
	}
	if err := writeFile(filepath.Join(out, "tokenizer.json"), append(tokJSON, '\n')); err != nil {
		return "", err
	}
	if err := checkpoints.SaveSafetensors(filepath.Join(out, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return "", err
	}
	return arch, nil
}

func writeFile(path string, b []byte) error {
	return checkpoints.WriteFileAtomic(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}
