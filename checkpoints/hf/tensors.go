package hf

import (
	"fmt"
	"slices"

	"mqa/checkpoints"
	"mqa/layers"
	"mqa/models"
)

// matrix is a row-major float32 matrix (a vector is one row).
type matrix struct {
	rows, cols int
	data       []float32
}

// transpose returns mᵀ: mqa's Linear weights are [in, out], torch's nn.Linear weights [out, in].
func (m matrix) transpose() matrix {
	t := matrix{rows: m.cols, cols: m.rows, data: make([]float32, len(m.data))}
	for r := range m.rows {
		for c := range m.cols {
			t.data[c*m.rows+r] = m.data[r*m.cols+c]
		}
	}
	return t
}

// columns returns columns [from, to) of m.
func (m matrix) columns(from, to int) matrix {
	out := matrix{rows: m.rows, cols: to - from, data: make([]float32, 0, m.rows*(to-from))}
	for r := range m.rows {
		out.data = append(out.data, m.data[r*m.cols+from:r*m.cols+to]...)
	}
	return out
}

// scaled returns m times s, each product rounded to float32 once (as mqa's scaled lookups are).
func (m matrix) scaled(s float64) matrix {
	out := matrix{rows: m.rows, cols: m.cols, data: make([]float32, len(m.data))}
	for i, v := range m.data {
		out.data[i] = float32(float64(v) * s)
	}
	return out
}

// joinColumns places matrices with the same number of rows side by side.
func joinColumns(ms ...matrix) matrix {
	out := matrix{rows: ms[0].rows}
	for _, m := range ms {
		out.cols += m.cols
	}
	for r := range out.rows {
		for _, m := range ms {
			out.data = append(out.data, m.data[r*m.cols:(r+1)*m.cols]...)
		}
	}
	return out
}

// exporter builds the Hugging Face tensors of one model, reading each mqa parameter once.
type exporter struct {
	cfg    models.Config
	params *layers.Params
	used   map[string]bool
	out    []checkpoints.Tensor
	err    error
}

// param returns an mqa parameter as a matrix ([n] vectors are one row).
func (e *exporter) param(name string) matrix {
	t := e.params.Get(name)
	if t == nil {
		if e.err == nil {
			e.err = fmt.Errorf("hf: the model has no parameter %s", name)
		}
		return matrix{rows: 1}
	}
	e.used[name] = true
	data := t.Data().([]float32)
	if s := t.Shape(); len(s) == 2 {
		return matrix{rows: s[0], cols: s[1], data: data}
	}
	return matrix{rows: 1, cols: len(data), data: data}
}

// bias returns an mqa bias, or zeros of width n when the model has no biases (GPT-2 and
// GPTBigCode always have them).
func (e *exporter) bias(name string, n int) matrix {
	if e.cfg.Bias {
		return e.param(name)
	}
	return matrix{rows: 1, cols: n, data: make([]float32, n)}
}

// put adds a tensor: a matrix, or with vector set a one-row matrix as a vector.
func (e *exporter) put(name string, m matrix, vector bool) {
	shape := []int{m.rows, m.cols}
	if vector {
		shape = []int{m.cols}
	}
	e.out = append(e.out, checkpoints.Tensor{Name: name, Shape: shape, Data: m.data})
}

// Tensors returns the model's weights under the Hugging Face names and layouts of its
// architecture (see Architecture), in the order they are built. Every mqa parameter is
// used; a parameter that the configuration should not have is an error.
func Tensors(cfg models.Config, params *layers.Params) ([]checkpoints.Tensor, error) {
	arch, err := Architecture(cfg)
	if err != nil {
		return nil, err
	}
	e := &exporter{cfg: cfg, params: params, used: map[string]bool{}}
	if arch == Llama {
		e.llama()
	} else {
		e.gpt(arch)
	}
	if e.err != nil {
		return nil, e.err
	}
	var unused []string
	for _, n := range params.Names() {
		if !e.used[n] {
			unused = append(unused, n)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		return nil, fmt.Errorf("hf: parameters %v have no place in the %s export", unused, arch)
	}
	return e.out, nil
}

// head adds the output projection of an untied model, or folds 1/√d into the final norm
// of a tied one (whose exported embedding table carries √d): it returns the factor of the
// final norm's gain and bias.
func (e *exporter) head() float64 {
	if e.cfg.TieEmbeddings {
		return 1 / embedScale(e.cfg)
	}
	e.put("lm_head.weight", e.param("head.weight").transpose(), false)
	return 1
}

func (e *exporter) llama() {
	c := e.cfg
	e.put("model.embed_tokens.weight", e.param("embed.weight").scaled(embedScale(c)), false)
	for i := range c.Layers {
		mqa, hf := fmt.Sprintf("layers.%d.", i), fmt.Sprintf("model.layers.%d.", i)
		e.put(hf+"input_layernorm.weight", e.param(mqa+"norm1.weight"), true)
		for _, p := range []string{"q", "k", "v", "o"} {
			e.put(hf+"self_attn."+p+"_proj.weight", e.param(mqa+"self_attn."+p+".weight").transpose(), false)
			if c.Bias {
				e.put(hf+"self_attn."+p+"_proj.bias", e.param(mqa+"self_attn."+p+".bias"), true)
			}
		}
		e.put(hf+"post_attention_layernorm.weight", e.param(mqa+"norm2.weight"), true)
		// SwiGLU: fc1's first FFDim outputs are the gate (through SiLU), the rest the value.
		fc1, h := e.param(mqa+"ffn.fc1.weight"), c.FFDim
		e.put(hf+"mlp.gate_proj.weight", fc1.columns(0, h).transpose(), false)
		e.put(hf+"mlp.up_proj.weight", fc1.columns(h, 2*h).transpose(), false)
		e.put(hf+"mlp.down_proj.weight", e.param(mqa+"ffn.fc2.weight").transpose(), false)
		if c.Bias {
			b1 := e.param(mqa + "ffn.fc1.bias")
			e.put(hf+"mlp.gate_proj.bias", b1.columns(0, h), true)
			e.put(hf+"mlp.up_proj.bias", b1.columns(h, 2*h), true)
			e.put(hf+"mlp.down_proj.bias", e.param(mqa+"ffn.fc2.bias"), true)
		}
	}
	norm := e.head()
	e.put("model.norm.weight", e.param("norm.weight").scaled(norm), true)
}

// gpt exports GPT-2 (Conv1D weights, [in, out] like mqa's) or GPTBigCode (nn.Linear
// weights, [out, in]); both concatenate the query, key and value projections into c_attn.
func (e *exporter) gpt(arch string) {
	c := e.cfg
	layout := func(m matrix) matrix { return m } // Conv1D
	if arch == GPTBigCode {
		layout = matrix.transpose
	}
	e.put("transformer.wte.weight", e.param("embed.weight").scaled(embedScale(c)), false)
	if c.Positions == layers.PosLearned {
		e.put("transformer.wpe.weight", e.param("pos.weight"), false)
	} else {
		table := layers.Sinusoidal(c.MaxLen, c.Dim)
		wpe := matrix{rows: c.MaxLen, cols: c.Dim, data: make([]float32, len(table))}
		for i, v := range table {
			wpe.data[i] = float32(v)
		}
		e.put("transformer.wpe.weight", wpe, false)
	}
	kv := c.KVHeads * c.HeadDim
	for i := range c.Layers {
		mqa, hf := fmt.Sprintf("layers.%d.", i), fmt.Sprintf("transformer.h.%d.", i)
		a := mqa + "self_attn."
		e.put(hf+"ln_1.weight", e.param(mqa+"norm1.weight"), true)
		e.put(hf+"ln_1.bias", e.param(mqa+"norm1.bias"), true)
		qkv := joinColumns(e.param(a+"q.weight"), e.param(a+"k.weight"), e.param(a+"v.weight"))
		e.put(hf+"attn.c_attn.weight", layout(qkv), false)
		e.put(hf+"attn.c_attn.bias", joinColumns(e.bias(a+"q.bias", c.Dim), e.bias(a+"k.bias", kv), e.bias(a+"v.bias", kv)), true)
		e.put(hf+"attn.c_proj.weight", layout(e.param(a+"o.weight")), false)
		e.put(hf+"attn.c_proj.bias", e.bias(a+"o.bias", c.Dim), true)
		e.put(hf+"ln_2.weight", e.param(mqa+"norm2.weight"), true)
		e.put(hf+"ln_2.bias", e.param(mqa+"norm2.bias"), true)
		e.put(hf+"mlp.c_fc.weight", layout(e.param(mqa+"ffn.fc1.weight")), false)
		e.put(hf+"mlp.c_fc.bias", e.bias(mqa+"ffn.fc1.bias", c.FFDim), true)
		e.put(hf+"mlp.c_proj.weight", layout(e.param(mqa+"ffn.fc2.weight")), false)
		e.put(hf+"mlp.c_proj.bias", e.bias(mqa+"ffn.fc2.bias", c.Dim), true)
	}
	norm := e.head()
	e.put("transformer.ln_f.weight", e.param("norm.weight").scaled(norm), true)
	e.put("transformer.ln_f.bias", e.param("norm.bias").scaled(norm), true)
}
