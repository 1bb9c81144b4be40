package cuda

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers"
	"mqa/layers/ops"
	"mqa/models"
)

type decodeVariant struct {
	name                 string
	task, act, norm, pos string
	kv                   int
	tie, bias            bool
	window               int
}

var decodeVariants = []decodeVariant{
	{"lm-relu-layer-learned-mha-bias", models.TaskLM, "relu", "layer", layers.PosLearned, 4, false, true, 0},
	{"lm-gelu-rms-rope-gqa2-window-tied", models.TaskLM, "gelu", "rms", layers.PosRoPE, 2, true, false, 3},
	{"lm-swiglu-sinusoidal-mqa", models.TaskLM, "swiglu", "layer", layers.PosSinusoidal, 1, true, false, 0},
	{"translate-swiglu-sinusoidal-mqa-bias", models.TaskTranslate, "swiglu", "layer", layers.PosSinusoidal, 1, true, true, 0},
	{"translate-relu-rope-mha", models.TaskTranslate, "relu", "rms", layers.PosRoPE, 4, false, false, 0},
	{"lm-gelu_tanh-layer-learned-gqa2", models.TaskLM, "gelu_tanh", "layer", layers.PosLearned, 2, false, true, 0},
}

func (v decodeVariant) config(t testing.TB) models.Config {
	cfg, err := models.Preset("tiny", v.task, 37)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Activation, cfg.Norm, cfg.Positions, cfg.KVHeads = v.act, v.norm, v.pos, v.kv
	cfg.TieEmbeddings, cfg.Bias, cfg.Window = v.tie, v.bias, v.window
	return cfg
}

func initDecodeParams(t testing.TB, cfg models.Config, seed uint64) *layers.Params {
	p := layers.NewParams(tensor.Float32, seed)
	shape := models.Shape{Batch: 1, TgtLen: 1}
	if cfg.Task == models.TaskTranslate {
		shape.SrcLen = 1
	}
	if _, err := models.Build(p, cfg, shape, models.Options{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// decodePlanFor builds cfg's decode step (random parameters) for rows sequences, a cache of
// maxLen and a source of srcLen (translation), and its plan.
func decodePlanFor(t *testing.T, cfg models.Config, rows, maxLen, srcLen int) (*Plan, *models.DecodeStep, *layers.Params) {
	t.Helper()
	params := initDecodeParams(t, cfg, 1)
	s, err := models.BuildDecodeStep(params, cfg, rows, maxLen, srcLen)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewDecodePlan(s, params.Names())
	if err != nil {
		t.Fatal(err)
	}
	return p, s, params
}

// Every node of every variant's decode step and encoder is one the GPU runs.
func TestDecodePlanVariants(t *testing.T) {
	for _, v := range decodeVariants {
		t.Run(v.name, func(t *testing.T) {
			cfg := v.config(t)
			srcLen := 0
			if cfg.Task == models.TaskTranslate {
				srcLen = 8
			}
			p, s, params := decodePlanFor(t, cfg, 3, 12, srcLen)
			attn := cfg.Layers
			if srcLen > 0 {
				attn *= 2
			}
			if p.Counts[KDecodeAttention] != attn {
				t.Errorf("%d decode attentions, want %d", p.Counts[KDecodeAttention], attn)
			}
			if p.Counts[KFloatFed] != attn*2 {
				t.Errorf("%d float inputs, want %d", p.Counts[KFloatFed], attn*2)
			}
			if len(p.Keep) != 1 || p.Loss != -1 {
				t.Errorf("keep %d, loss %d", len(p.Keep), p.Loss)
			}
			if p.Nodes[p.Keep[0]].Node != s.Logits {
				t.Errorf("first kept node is not the logits")
			}
			for _, pn := range p.Nodes {
				if pn.Kind == KIntFed && pn.Fed == "" {
					t.Errorf("unnamed int input %s", pn.Node.Name())
				}
			}
			if srcLen > 0 {
				e, err := models.BuildEncoder(params, cfg, 2, srcLen)
				if err != nil {
					t.Fatal(err)
				}
				ep, err := NewEncoderPlan(e, params.Names())
				if err != nil {
					t.Fatal(err)
				}
				if len(ep.Keep) != 2*cfg.Layers {
					t.Errorf("encoder keeps %d outputs", len(ep.Keep))
				}
			}
		})
	}
}

// The Go model of the CUDA-core split kernel (splits, tiles, online softmax, combine) equals
// ops.DecodeAttention's CPU kernel.
func TestDecodeAttnModel(t *testing.T) {
	cases := []struct {
		name              string
		h, kv, dk, window int
		hasNew            bool
		maxLen            int
		lens              []int
	}{
		{"mha self", 4, 4, 16, 0, true, 200, []int{0, 1, 63, 64, 65, 199}},
		{"mqa self long", 8, 1, 8, 0, true, 300, []int{299, 128, -1, 7}},
		{"gqa self window", 8, 2, 4, 70, true, 260, []int{259, 69, 70, 3}},
		{"mqa cross", 8, 1, 16, 0, false, 150, []int{150, 1, 64, 129}},
		{"gqa cross", 6, 3, 8, 0, false, 90, []int{90, 2, 65}},
	}
	for ci, c := range cases {
		for _, splits := range []int{1, 2, 3, 7} {
			rng := rand.New(rand.NewPCG(uint64(ci), uint64(splits)))
			B := len(c.lens)
			rnd := func(n int) ([]float32, []float64) {
				f, d := make([]float32, n), make([]float64, n)
				for i := range f {
					f[i] = float32(rng.NormFloat64())
					d[i] = float64(f[i])
				}
				return f, d
			}
			q32, q64 := rnd(B * c.h * c.dk)
			k32, k64 := rnd(B * c.kv * c.maxLen * c.dk)
			v32, v64 := rnd(B * c.kv * c.maxLen * c.dk)
			op := ops.DecodeAttention{Heads: c.h, KVHeads: c.kv, HeadDim: c.dk, Scale: 1 / math.Sqrt(float64(c.dk)), Window: c.window, HasNew: c.hasNew}
			vals := []G.Value{
				tensor.New(tensor.WithShape(B, c.h*c.dk), tensor.WithBacking(q64)),
				tensor.New(tensor.WithShape(B, c.kv, c.maxLen, c.dk), tensor.WithBacking(k64)),
				tensor.New(tensor.WithShape(B, c.kv, c.maxLen, c.dk), tensor.WithBacking(v64)),
			}
			var nk32, nv32 []float32
			if c.hasNew {
				var nk64, nv64 []float64
				nk32, nk64 = rnd(B * c.kv * c.dk)
				nv32, nv64 = rnd(B * c.kv * c.dk)
				vals = append(vals, tensor.New(tensor.WithShape(B, c.kv*c.dk), tensor.WithBacking(nk64)),
					tensor.New(tensor.WithShape(B, c.kv*c.dk), tensor.WithBacking(nv64)))
			}
			vals = append(vals, tensor.New(tensor.WithShape(B), tensor.WithBacking(append([]int(nil), c.lens...))))
			want, err := op.Do(vals...)
			if err != nil {
				t.Fatal(err)
			}
			w := want.Data().([]float64)
			got := decodeAttnModel(op, q32, k32, v32, nk32, nv32, c.lens, c.maxLen, splits)
			var worst float64
			for i := range w {
				worst = math.Max(worst, math.Abs(float64(got[i])-w[i]))
			}
			if worst > 1e-5 {
				t.Errorf("%s, %d splits: max error %.3g", c.name, splits, worst)
			}
		}
	}
}

func TestPlanDecodeLaunch(t *testing.T) {
	mqa := ops.DecodeAttention{Heads: 8, KVHeads: 1, HeadDim: 64, HasNew: true}
	mha := ops.DecodeAttention{Heads: 8, KVHeads: 8, HeadDim: 64, HasNew: true}
	for _, c := range []struct {
		op               ops.DecodeAttention
		rows, keys, want int
	}{
		{mqa, 1, 4097, 32}, // 1 item: as many splits as whole 128-key chunks allow
		{mha, 1, 4097, 32},
		{mha, 64, 4097, 1}, // 512 items fill the GPU (4 per multiprocessor)
		{mqa, 64, 1025, 8},
		{mha, 64, 160, 1},
		{mqa, 1024, 4097, 1},
		{mha, 8, 129, 1}, // fewer than two chunks
		{mha, 8, 257, 2},
		{mqa, 1, 10, 1},
		{mqa, 1, 100000, decMaxSplt},
	} {
		for _, kernel := range []string{"fast", "simt"} {
			l, err := planDecodeLaunch(c.op, c.rows, c.keys, 132, kernel, false)
			if err != nil || !l.Fast || l.MMA != (kernel == "fast") || l.Splits != c.want {
				t.Errorf("%v rows %d keys %d %s: %+v, %v; want %d splits", c.op, c.rows, c.keys, kernel, l, err, c.want)
			}
		}
	}
	// every head width and group size of the split kernels fits in shared memory, with whole warps
	for _, dk := range []int{4, 8, 16, 32, 64, 128} {
		for r := 1; r <= decMaxR; r++ {
			for _, bf16 := range []bool{false, true} {
				l, err := planDecodeLaunch(ops.DecodeAttention{Heads: r, KVHeads: 1, HeadDim: dk}, 1, 100, 132, "fast", bf16)
				if err != nil || l.SmemBytes > smemLimit || l.Threads%32 != 0 || l.Threads < 32 || l.MMA != (dk >= 16) {
					t.Errorf("dk %d r %d bf16 %v: %+v %v", dk, r, bf16, l, err)
				}
			}
		}
	}
	if l, _ := planDecodeLaunch(ops.DecodeAttention{Heads: 8, KVHeads: 1, HeadDim: 128}, 1, 100, 132, "fast", false); l.Threads != 32 {
		t.Errorf("FP32 cache, dk 128: %d threads, want one warp (34 KiB of stages per warp)", l.Threads)
	}
	l, err := planDecodeLaunch(ops.DecodeAttention{Heads: 16, KVHeads: 1, HeadDim: 64}, 1, 100, 132, "fast", false)
	if err != nil || l.Fast || l.Reason == "" {
		t.Errorf("16 query heads per K/V head should fall back to the reference kernel: %+v %v", l, err)
	}
	if _, err := planDecodeLaunch(ops.DecodeAttention{Heads: 2, KVHeads: 1, HeadDim: 24}, 1, 20000, 132, "fast", false); err == nil {
		t.Errorf("no error for a reference kernel over 20000 keys")
	}
}

func TestStepBytes(t *testing.T) {
	for _, c := range []struct {
		tie      bool
		gemmElem int
	}{{true, 4}, {false, 4}, {true, 2}, {false, 2}} {
		cfg, _ := models.Preset("tiny", models.TaskLM, 37)
		cfg.TieEmbeddings = c.tie
		cfg.Positions = layers.PosLearned
		p, _, params := decodePlanFor(t, cfg, 5, 20, 0)
		w, kv := StepBytes(p, cfg, 5, 10, 0, 4, c.gemmElem)
		// vectors (norms) in FP32; the position table and the embedding: their 5 gathered rows in
		// FP32, and the whole embedding too when it is the head; every other matrix by the GEMMs
		var want int64
		for _, name := range params.Names() {
			sh := params.Get(name).Shape()
			switch {
			case len(sh) == 1:
				want += int64(4 * sh[0])
			case name == "pos.weight":
				want += int64(4 * 5 * cfg.Dim)
			case name == "embed.weight":
				want += int64(4 * 5 * cfg.Dim)
				if c.tie {
					want += int64(c.gemmElem * sh.TotalSize())
				}
			default:
				want += int64(c.gemmElem * sh.TotalSize())
			}
		}
		if w != want {
			t.Errorf("tie %v, %d-byte GEMM weights: weight bytes %d, want %d", c.tie, c.gemmElem, w, want)
		}
		if wantKV := int64(2*5*cfg.KVHeads*cfg.HeadDim*cfg.Layers) * (10*4 + 4); kv != wantKV {
			t.Errorf("kv bytes %d, want %d", kv, wantKV)
		}
	}
}

// A K/V cache of 2^31 elements or more is planned (the decode kernels index caches in 64 bits);
// a computed node that large is not (kernels take 32-bit counts).
func TestDecodePlanLargeCache(t *testing.T) {
	if math.MaxInt == math.MaxInt32 {
		t.Skip("a cache of 2^31 elements needs 64-bit ints")
	}
	cfg, _ := models.Preset("tiny", models.TaskLM, 37)
	cfg.MaxLen, cfg.Positions = 1<<16, layers.PosLearned // a sinusoidal table would be a 2^16-row constant
	params := initDecodeParams(t, cfg, 1)
	rows := int(int64(1<<31)/int64(cfg.KVHeads*cfg.HeadDim*cfg.MaxLen)) + 1
	s, err := models.BuildDecodeStep(params, cfg, rows, cfg.MaxLen, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewDecodePlan(s, params.Names())
	if err != nil {
		t.Fatalf("cache of %d elements: %v", rows*cfg.KVHeads*cfg.HeadDim*cfg.MaxLen, err)
	}
	if p.Counts[KFloatFed] == 0 {
		t.Fatal("no fed cache in the plan")
	}
	g, err := models.Build(params, cfg, models.Shape{Batch: 1 << 12, TgtLen: 1 << 12}, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPlan(g, params.Names(), nil); err == nil || !strings.Contains(err.Error(), "2^31") {
		t.Errorf("a training graph with 2^31-element activations: err = %v, want the size limit", err)
	}
}

// DecodeOptions.Validate names what is allowed.
func TestDecodeOptionsValidate(t *testing.T) {
	for _, c := range []struct {
		opt  DecodeOptions
		want string // "" valid, else part of the error
	}{
		{DefaultDecodeOptions(), ""},
		{DecodeOptions{Cache: "bf16", Math: "bf16", Kernel: "simt", Splits: decMaxSplt}, ""},
		{DecodeOptions{Cache: "fp16", Math: "fp32", Kernel: "fast"}, "allowed: fp32, bf16"},
		{DecodeOptions{Cache: "fp32", Math: "fp64", Kernel: "fast"}, "allowed: fp32, tf32, bf16"},
		{DecodeOptions{Cache: "fp32", Math: "fp32", Kernel: "flash"}, "allowed: fast, simt, ref"},
		{DecodeOptions{Cache: "fp32", Math: "fp32", Kernel: "fast", Splits: -1}, "splits -1"},
		{DecodeOptions{Cache: "fp32", Math: "fp32", Kernel: "fast", Splits: decMaxSplt + 1}, "1…64"},
		{DecodeOptions{Cache: "fp32", Math: "fp32", Kernel: "ref", Splits: 2}, "does not split"},
	} {
		err := c.opt.Validate()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.opt, err, c.want)
		}
	}
}
