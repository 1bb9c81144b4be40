// Package hf exports mqa language models as Hugging Face transformers model directories
// (config.json, generation_config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json, special_tokens_map.json) that AutoModelForCausalLM and
// AutoTokenizer load with no code of ours.
//
// A model is exported only to an architecture that computes exactly what mqa computes:
//
//   - Llama (LlamaForCausalLM) for RMSNorm, rotary positions and SwiGLU, with any number
//     of K/V heads: num_key_value_heads is the model's, so MQA and GQA models keep their
//     small K/V cache;
//   - GPT-2 (GPT2LMHeadModel) for multi-head attention with LayerNorm, learned or
//     sinusoidal positions (the sinusoidal table becomes the position embedding) and ReLU
//     or GELU (exact, or the tanh approximation);
//   - GPTBigCode (GPTBigCodeForCausalLM, multi_query) for the same settings with one K/V
//     head.
//
// Anything else (other combinations, local attention windows, translation models) is
// refused with an error that says which settings export.
//
// What these architectures lack is folded into the weights: the √d_model factor of mqa's
// embedding lookup multiplies the exported embedding table, and when the output
// projection is tied to that table, the final norm's gain (and bias) is divided by √d_model
// so the logits stay the same.
package hf

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"mqa/layers"
	"mqa/layers/ops"
	"mqa/models"
)

// Architectures a model can be exported to (Hugging Face model_type values).
const (
	Llama      = "llama"
	GPT2       = "gpt2"
	GPTBigCode = "gpt_bigcode"
)

// architectureClass is the transformers class of each architecture.
var architectureClass = map[string]string{
	Llama:      "LlamaForCausalLM",
	GPT2:       "GPT2LMHeadModel",
	GPTBigCode: "GPTBigCodeForCausalLM",
}

// exportable says which training settings export, for refusals.
const exportable = "settings that export: -norm rms -positions rope -activation swiglu with any -attn (Llama); " +
	"or -norm layer -positions learned|sinusoidal -activation gelu|gelu_tanh|relu with -attn mha (GPT-2) or -attn mqa (GPTBigCode); " +
	"no -window in either case"

// ErrTranslation refuses translation models: no Hugging Face encoder–decoder matches them.
var ErrTranslation = errors.New("translation models do not export: Hugging Face's T5 and Marian have no K/V-head setting, " +
	"and T5Gemma, which has one, also normalises each sub-layer's output (pre- and post-norms around attention and " +
	"feed-forward), uses GeGLU with tanh-approximated GELU and soft-caps its logits, none of which mqa's pre-norm " +
	"translation model has; its model.safetensors is standard safetensors whose tensor names and layouts are " +
	"listed in README.md (\"Tensor layout\")")

// Architecture returns the Hugging Face architecture (model_type) that computes exactly
// what cfg does, or an error that names the settings that prevent it and those that export.
func Architecture(cfg models.Config) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	if cfg.Task != models.TaskLM {
		return "", ErrTranslation
	}
	settings := fmt.Sprintf("-norm %s -positions %s -activation %s -attn %s", cfg.Norm, cfg.Positions, cfg.Activation, cfg.AttentionName())
	if cfg.Window > 0 {
		return "", fmt.Errorf("a local attention window (window %d) has no exact Hugging Face counterpart here; %s", cfg.Window, exportable)
	}
	switch {
	case cfg.Norm == "rms" && cfg.Positions == layers.PosRoPE && cfg.Activation == ops.SwiGLU:
		if cfg.Dim%cfg.Heads != 0 {
			return "", fmt.Errorf("the Llama export needs a width divisible by the heads, got dim %d and %d heads", cfg.Dim, cfg.Heads)
		}
		return Llama, nil
	case cfg.Norm == "layer" && cfg.Positions != layers.PosRoPE && cfg.Activation != ops.SwiGLU &&
		(cfg.KVHeads == cfg.Heads || cfg.KVHeads == 1):
		if cfg.Heads*cfg.HeadDim != cfg.Dim {
			return "", fmt.Errorf("the GPT-2 and GPTBigCode exports need heads × head_dim = dim, got %d × %d ≠ %d", cfg.Heads, cfg.HeadDim, cfg.Dim)
		}
		if cfg.KVHeads == cfg.Heads {
			return GPT2, nil
		}
		return GPTBigCode, nil
	}
	return "", fmt.Errorf("no Hugging Face architecture computes exactly what %s does; %s", settings, exportable)
}

// Config returns the config.json of cfg exported as arch (see Architecture).
func Config(cfg models.Config, arch string) map[string]any {
	c := map[string]any{
		"architectures":       []string{architectureClass[arch]},
		"model_type":          arch,
		"vocab_size":          cfg.Vocab,
		"bos_token_id":        1,
		"eos_token_id":        2,
		"pad_token_id":        0,
		"tie_word_embeddings": cfg.TieEmbeddings,
		"use_cache":           true,
		"initializer_range":   jsonFloat(0.02),
		"dtype":               "float32",
	}
	if arch == Llama {
		for k, v := range map[string]any{
			"hidden_size":             cfg.Dim,
			"intermediate_size":       cfg.FFDim,
			"num_hidden_layers":       cfg.Layers,
			"num_attention_heads":     cfg.Heads,
			"num_key_value_heads":     cfg.KVHeads,
			"head_dim":                cfg.HeadDim,
			"hidden_act":              "silu",
			"max_position_embeddings": cfg.MaxLen,
			"rms_norm_eps":            jsonFloat(layers.RMSNormEps),
			"rope_theta":              jsonFloat(layers.RoPEBase),
			"rope_parameters":         map[string]any{"rope_type": "default", "rope_theta": jsonFloat(layers.RoPEBase)},
			"attention_bias":          cfg.Bias,
			"mlp_bias":                cfg.Bias,
			"attention_dropout":       jsonFloat(0),
			"pretraining_tp":          1,
		} {
			c[k] = v
		}
		return c
	}
	act := "relu"
	switch cfg.Activation {
	case ops.GELU:
		act = "gelu" // transformers' "gelu" is the exact, erf-based GELU, as mqa's
	case ops.GELUTanh:
		act = "gelu_new" // transformers' tanh approximation, GPT-2's own
	}
	for k, v := range map[string]any{
		"n_positions":         cfg.MaxLen,
		"n_embd":              cfg.Dim,
		"n_layer":             cfg.Layers,
		"n_head":              cfg.Heads,
		"n_inner":             cfg.FFDim,
		"activation_function": act,
		"layer_norm_epsilon":  jsonFloat(layers.LayerNormEps),
		"resid_pdrop":         jsonFloat(0),
		"embd_pdrop":          jsonFloat(0),
		"attn_pdrop":          jsonFloat(0),
		"scale_attn_weights":  true,
	} {
		c[k] = v
	}
	if arch == GPTBigCode {
		c["multi_query"] = true
		c["attention_softmax_in_fp32"] = true
		c["scale_attention_softmax_in_fp32"] = true
	} else {
		c["scale_attn_by_inverse_layer_idx"] = false
		c["reorder_and_upcast_attn"] = false
	}
	return c
}

// GenerationConfig returns generation_config.json: greedy search that stops at EOS.
func GenerationConfig(cfg models.Config) map[string]any {
	return map[string]any{"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "do_sample": false, "max_length": cfg.MaxLen}
}

// jsonFloat is a float that JSON shows as one (10000.0, not 10000): transformers checks the
// types of config entries.
type jsonFloat float64

// MarshalJSON writes the shortest exact form, with a decimal point or an exponent.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(float64(f), 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return []byte(s), nil
}

// embedScale is the factor of mqa's embedding lookup.
func embedScale(cfg models.Config) float64 { return math.Sqrt(float64(cfg.Dim)) }
