// Package models defines the decoder-only language model (LM) and the encoder–decoder
// translation model (Seq2Seq) from layers, their JSON configuration, presets, parameter
// counting and the parameter-matched feed-forward width for MQA/GQA comparisons.
package models

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"mqa/checkpoints"
	"mqa/layers"
	"mqa/layers/ops"
)

// Tasks.
const (
	TaskLM        = "lm"
	TaskTranslate = "translate"
)

// Config describes a model. It is saved as config.json beside the weights.
type Config struct {
	Task          string  `json:"task"`                     // "lm" or "translate"
	Vocab         int     `json:"vocab"`                    // target vocabulary (and source, when shared)
	SrcVocab      int     `json:"src_vocab,omitempty"`      // source vocabulary; 0 shares the target's embedding
	Dim           int     `json:"dim"`                      // model width d
	Layers        int     `json:"layers"`                   // decoder layers (all layers of an LM)
	EncoderLayers int     `json:"encoder_layers,omitempty"` // encoder layers of a translation model
	Heads         int     `json:"heads"`                    // query heads h
	KVHeads       int     `json:"kv_heads"`                 // key/value heads: h = MHA, 1 = MQA
	HeadDim       int     `json:"head_dim"`                 // d_k = d_v
	FFDim         int     `json:"ff_dim"`                   // feed-forward hidden width
	Activation    string  `json:"activation"`               // relu, gelu, gelu_tanh or swiglu
	Norm          string  `json:"norm"`                     // layer or rms
	Positions     string  `json:"positions"`                // sinusoidal, learned or rope
	MaxLen        int     `json:"max_len"`                  // longest sequence (positions)
	Dropout       float64 `json:"dropout"`
	TieEmbeddings bool    `json:"tie_embeddings"`   // output projection = target embedding
	Bias          bool    `json:"bias"`             // biases in linear layers
	Window        int     `json:"window,omitempty"` // local self-attention window; 0 = full
}

// Validate reports the first thing wrong with the configuration.
func (c Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Task != TaskLM && c.Task != TaskTranslate {
		bad("task %q (allowed: lm, translate)", c.Task)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab", c.Vocab}, {"dim", c.Dim}, {"layers", c.Layers}, {"heads", c.Heads}, {"kv_heads", c.KVHeads},
		{"head_dim", c.HeadDim}, {"ff_dim", c.FFDim}, {"max_len", c.MaxLen}} {
		if f.v < 1 || f.v > 1<<24 {
			bad("%s = %d must be between 1 and %d", f.name, f.v, 1<<24)
		}
	}
	if c.Task == TaskTranslate && (c.EncoderLayers < 1 || c.EncoderLayers > 1<<10) {
		bad("encoder_layers = %d must be positive for translation", c.EncoderLayers)
	}
	if c.Task == TaskLM && (c.EncoderLayers != 0 || c.SrcVocab != 0) {
		bad("a language model has no encoder (encoder_layers and src_vocab must be 0)")
	}
	if c.SrcVocab < 0 || c.EncoderLayers < 0 || c.Window < 0 {
		bad("src_vocab, encoder_layers and window must not be negative")
	}
	if c.KVHeads > 0 && c.Heads%c.KVHeads != 0 {
		bad("heads = %d is not divisible by kv_heads = %d", c.Heads, c.KVHeads)
	}
	if !slices.Contains(ops.Activations(), c.Activation) {
		bad("activation %q (allowed: %s)", c.Activation, strings.Join(ops.Activations(), ", "))
	}
	if c.Norm != "layer" && c.Norm != "rms" {
		bad("norm %q (allowed: layer, rms)", c.Norm)
	}
	switch c.Positions {
	case layers.PosSinusoidal, layers.PosLearned:
	case layers.PosRoPE:
		if c.HeadDim%2 != 0 {
			bad("rope needs an even head_dim, got %d", c.HeadDim)
		}
	default:
		bad("positions %q (allowed: sinusoidal, learned, rope)", c.Positions)
	}
	if c.Dropout < 0 || c.Dropout >= 1 || math.IsNaN(c.Dropout) {
		bad("dropout %g must be in [0, 1)", c.Dropout)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid model config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// ParseConfig decodes a config strictly (unknown fields are errors) and validates it.
func ParseConfig(data []byte, source string) (Config, error) {
	var c Config
	if err := checkpoints.DecodeJSON(data, &c, source); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", source, err)
	}
	return c, nil
}

// Training are a preset's data and training defaults (mqa train, eval and uptrain) and
// those of mqa compare, whose CPU default (tiny) finishes in about 6 minutes on two cores
// with OpenBLAS (README).
type Training struct {
	Vocab, SeqLen, Batch, MaxTokens, MaxLen, Steps int // data sizes and training steps
	LR                                             float64
	CompareSteps                                   int // mqa compare: training steps per model
	BLEULines                                      int // mqa compare: test sentences translated for BLEU (0: all)
	DecodeBatch                                    int // mqa compare: the large batch of the decoding-speed measurement
	CompareDropout                                 float64
}

// preset is one named size: the model (Vocab and Task are filled in by Preset) and how it
// is trained.
type preset struct {
	model    Config
	training Training
}

// presets are the named sizes.
var presets = map[string]preset{
	// tiny trains in seconds on a CPU (tests and the quick compare).
	"tiny": {Config{Dim: 64, Layers: 2, EncoderLayers: 2, Heads: 4, HeadDim: 16, FFDim: 256, MaxLen: 128},
		Training{Vocab: 1000, SeqLen: 32, Batch: 8, MaxTokens: 512, MaxLen: 128, Steps: 300, LR: 2e-3, CompareSteps: 1000, BLEULines: 300, DecodeBatch: 32}},
	// small is the CPU demo size.
	"small": {Config{Dim: 256, Layers: 4, EncoderLayers: 4, Heads: 4, HeadDim: 64, FFDim: 1024, MaxLen: 128},
		Training{Vocab: 4000, SeqLen: 64, Batch: 16, MaxTokens: 2048, MaxLen: 128, Steps: 2000, LR: 1e-3, CompareSteps: 2000, BLEULines: 500, DecodeBatch: 64, CompareDropout: 0.1}},
	// base is the GPU study size.
	"base": {Config{Dim: 512, Layers: 6, EncoderLayers: 6, Heads: 8, HeadDim: 64, FFDim: 2048, MaxLen: 256},
		Training{Vocab: 8192, SeqLen: 256, Batch: 32, MaxTokens: 8192, MaxLen: 256, Steps: 20000, LR: 7e-4, CompareSteps: 20000, BLEULines: 0, DecodeBatch: 256, CompareDropout: 0.1}},
	// paper is Shazeer's translation model (Table 1).
	"paper": {Config{Dim: 1024, Layers: 6, EncoderLayers: 6, Heads: 8, HeadDim: 128, FFDim: 4096, MaxLen: 256},
		Training{Vocab: 8192, SeqLen: 256, Batch: 32, MaxTokens: 16384, MaxLen: 256, Steps: 20000, LR: 5e-4, CompareSteps: 20000, BLEULines: 0, DecodeBatch: 256, CompareDropout: 0.1}},
}

// Presets lists the preset names.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return presets[names[i]].model.Dim < presets[names[j]].model.Dim })
	return names
}

// Preset returns a named configuration for a task and vocabulary size, with multi-head
// attention, ReLU, LayerNorm, sinusoidal positions, tied embeddings and no biases or dropout.
func Preset(name, task string, vocab int) (Config, error) {
	p, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown preset %q (allowed: %s)", name, strings.Join(Presets(), ", "))
	}
	c := p.model
	c.Task, c.Vocab, c.KVHeads = task, vocab, c.Heads
	c.Activation, c.Norm, c.Positions, c.TieEmbeddings = ops.ReLU, "layer", layers.PosSinusoidal, true
	if task == TaskLM {
		c.EncoderLayers = 0
	}
	return c, c.Validate()
}

// PresetTraining returns the data and training defaults of a named preset (false for an
// unknown name).
func PresetTraining(name string) (Training, bool) {
	p, ok := presets[name]
	return p.training, ok
}

// ParseAttention reads an attention spec: "mha" (KVHeads = heads), "mqa" (1) or "gqa:G" (G).
func ParseAttention(spec string, heads int) (int, error) {
	switch {
	case spec == "mha":
		return heads, nil
	case spec == "mqa":
		return 1, nil
	case strings.HasPrefix(spec, "gqa:"):
		g, err := strconv.Atoi(strings.TrimPrefix(spec, "gqa:"))
		if err != nil || g < 1 || g > heads || heads%g != 0 {
			return 0, fmt.Errorf("attention %q: G must divide the %d heads", spec, heads)
		}
		return g, nil
	}
	return 0, fmt.Errorf("unknown attention %q (allowed: mha, mqa, gqa:G with G dividing %d)", spec, heads)
}

// AttentionName is the spec of a KV-head count: "mha", "mqa" or "gqa:G".
func (c Config) AttentionName() string {
	switch c.KVHeads {
	case c.Heads:
		return "mha"
	case 1:
		return "mqa"
	}
	return "gqa:" + strconv.Itoa(c.KVHeads)
}

// attentionBlocks is the number of attention blocks and of feed-forward blocks.
func (c Config) attentionBlocks() (attn, ffn int) {
	if c.Task == TaskTranslate {
		return c.EncoderLayers + 2*c.Layers, c.EncoderLayers + c.Layers
	}
	return c.Layers, c.Layers
}

// MatchedFFDim returns the feed-forward width that gives a model with kvHeads K/V heads the
// same parameter count as the multi-head model c (Shazeer 2019): each attention block saves
// 2·d·(h − g)·d_k weights, and each unit of feed-forward width costs 2·d (3·d for SwiGLU),
// spread over all feed-forward blocks. With h·d_k = d this is d_ff + (d − g·d_k) per block
// ratio (1 for an LM, 1.5 for an encoder–decoder of equal depths).
func (c Config) MatchedFFDim(kvHeads int) int {
	attn, ffn := c.attentionBlocks()
	saved := 2 * c.Dim * (c.Heads - kvHeads) * c.HeadDim * attn
	unit := 2 * c.Dim
	if c.Activation == ops.SwiGLU {
		unit = 3 * c.Dim
	}
	return c.FFDim + int(math.Round(float64(saved)/float64(unit*ffn)))
}

// WithKVHeads returns c with kvHeads K/V heads; with matched, the feed-forward width is
// widened to keep the parameter count of c (see MatchedFFDim), so c must be the multi-head
// model with its final activation. Spec.Config applies the settings in this order.
func (c Config) WithKVHeads(kvHeads int, matched bool) (Config, error) {
	out := c
	out.KVHeads = kvHeads
	if matched {
		out.FFDim = c.MatchedFFDim(kvHeads)
	}
	return out, out.Validate()
}

// ParamCount returns the number of parameters of the model, from the formula.
func (c Config) ParamCount() int {
	d, a := c.Dim, c.Heads*c.HeadDim
	kv := c.KVHeads * c.HeadDim
	bias := func(n int) int {
		if c.Bias {
			return n
		}
		return 0
	}
	attnBlock := d*a + bias(a) + 2*(d*kv+bias(kv)) + a*d + bias(d)
	fc1 := c.FFDim
	if c.Activation == ops.SwiGLU {
		fc1 *= 2
	}
	ffnBlock := d*fc1 + bias(fc1) + c.FFDim*d + bias(d)
	norm := d
	if c.Norm == "layer" {
		norm = 2 * d
	}
	n := c.Vocab * d // target (and shared source) embedding
	if c.SrcVocab > 0 {
		n += c.SrcVocab * d
	}
	if !c.TieEmbeddings {
		n += d * c.Vocab
	}
	if c.Positions == layers.PosLearned {
		n += c.MaxLen * d
		if c.Task == TaskTranslate {
			n += c.MaxLen * d // the encoder's own position table
		}
	}
	n += c.Layers * (attnBlock + ffnBlock + 2*norm)
	n += norm // final decoder norm
	if c.Task == TaskTranslate {
		n += c.Layers * (attnBlock + norm) // cross-attention
		n += c.EncoderLayers*(attnBlock+ffnBlock+2*norm) + norm
	}
	return n
}
