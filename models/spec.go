package models

// Spec chooses a model in one value: a preset size, the task and vocabulary, the attention
// kind and the settings that vary between compared models. Config applies them in the one
// order that is right (the parameter-matched feed-forward width depends on the activation
// and on the K/V heads), so callers need not know that order.
type Spec struct {
	Preset   string // tiny, small, base or paper
	Task     string // TaskLM or TaskTranslate
	Vocab    int    // (target) vocabulary size
	SrcVocab int    // translation: a separate source vocabulary; 0 shares the target's
	// Attention is "mha" (the default when empty), "mqa" or "gqa:G".
	Attention string
	// Activation, Norm and Positions replace the preset's (ReLU, LayerNorm, sinusoidal)
	// when set.
	Activation, Norm, Positions string
	// Unmatched keeps the multi-head model's d_ff for MQA/GQA instead of widening it to the
	// multi-head parameter count (see MatchedFFDim).
	Unmatched bool
	// Untied gives the model an output projection of its own instead of the tied embedding.
	Untied  bool
	Bias    bool    // biases in linear layers
	Dropout float64 // dropout probability in training
	Window  int     // local self-attention window (0: full)
}

// Config returns the validated configuration of the spec.
func (s Spec) Config() (Config, error) {
	c, err := Preset(s.Preset, s.Task, s.Vocab)
	if err != nil {
		return c, err
	}
	if s.Task == TaskTranslate && s.SrcVocab > 0 && s.SrcVocab != s.Vocab {
		c.SrcVocab = s.SrcVocab
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{{&c.Activation, s.Activation}, {&c.Norm, s.Norm}, {&c.Positions, s.Positions}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	c.TieEmbeddings, c.Bias, c.Dropout, c.Window = !s.Untied, s.Bias, s.Dropout, s.Window
	attention := s.Attention
	if attention == "" {
		attention = "mha"
	}
	kv, err := ParseAttention(attention, c.Heads)
	if err != nil {
		return c, err
	}
	return c.WithKVHeads(kv, !s.Unmatched)
}
