package cuda

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"mqa/layers"
	"mqa/models"
	"mqa/train"
)

// planFor builds the training graph of cfg and its plan.
func planFor(t *testing.T, cfg models.Config, shape models.Shape) *Plan {
	t.Helper()
	p, err := models.InitParams(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	var step uint64
	g, err := models.Build(p, cfg, shape, models.Options{Train: true, LabelSmoothing: 0.1, DropoutStep: &step})
	if err != nil {
		t.Fatal(err)
	}
	wrt, err := train.ParamNodes(g, p.Names())
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(g.Loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := NewPlan(g, p.Names(), grads)
	if err != nil {
		t.Fatalf("%+v: %v", cfg, err)
	}
	return pl
}

// Every op of every model variant is one the GPU executor runs.
func TestPlanCoversModels(t *testing.T) {
	for _, task := range []string{models.TaskLM, models.TaskTranslate} {
		for _, v := range []struct {
			act, norm, pos string
			kv             int
			tie, bias      bool
			window         int
			dropout        float64
		}{
			{"relu", "layer", layers.PosSinusoidal, 4, true, false, 0, 0.1},
			{"gelu", "rms", layers.PosLearned, 1, false, true, 0, 0},
			{"swiglu", "layer", layers.PosRoPE, 2, false, false, 3, 0.2},
			{"gelu_tanh", "layer", layers.PosSinusoidal, 2, false, true, 0, 0.1},
		} {
			cfg, err := models.Preset("tiny", task, 40)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Activation, cfg.Norm, cfg.Positions, cfg.KVHeads = v.act, v.norm, v.pos, v.kv
			cfg.TieEmbeddings, cfg.Bias, cfg.Window, cfg.Dropout = v.tie, v.bias, v.window, v.dropout
			shape := models.Shape{Batch: 2, TgtLen: 5}
			if task == models.TaskTranslate {
				shape.SrcLen = 4
			}
			pl := planFor(t, cfg, shape)
			if pl.Counts[KMatMul] == 0 || pl.Counts[KBatchedMatMul] == 0 || pl.Counts[KSoftmaxGrad] == 0 {
				t.Errorf("%s %+v: plan counts %v", task, v, pl.Counts)
			}
			for i, gi := range pl.Grads {
				if pl.Nodes[gi].Int {
					t.Errorf("gradient %d is an int tensor", i)
				}
			}
		}
	}
}

// An op the executor does not know is an error that names it.
func TestPlanUnknownOp(t *testing.T) {
	cfg, _ := models.Preset("tiny", models.TaskLM, 40)
	p, _ := models.InitParams(cfg, 1)
	g, err := models.Build(p, cfg, models.Shape{Batch: 1, TgtLen: 3}, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.HadamardProd(g.Logits, g.Logits); err != nil {
		t.Fatal(err)
	}
	_, err = NewPlan(g, p.Names(), nil)
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("err = %v, want an unsupported-op error", err)
	}
}

// Every residual sum that a norm reads next is fused into the norm's kernel, and only where no
// node between them reads the sum; a decode step's permutes of one-long axes are aliases.
func TestPlanFusions(t *testing.T) {
	check := func(t *testing.T, pl *Plan) {
		for ni, ai := range pl.AddNorm {
			if pl.Nodes[ni].Kind != KNorm || pl.Nodes[ai].Kind != KAdd || pl.Nodes[ni].In[0] != ai {
				t.Fatalf("AddNorm %d → %d: not a norm over a sum", ni, ai)
			}
			for k := ai + 1; k < ni; k++ {
				for _, j := range pl.Nodes[k].In {
					if pl.Nodes[j].Alias == ai {
						t.Errorf("node %d (%v) reads the sum %d before the norm %d computes it", k, pl.Nodes[k].Kind, ai, ni)
					}
				}
			}
		}
	}
	cfg, _ := models.Preset("tiny", models.TaskLM, 40)
	tp := planFor(t, cfg, models.Shape{Batch: 2, TgtLen: 5})
	check(t, tp)
	// per layer: the sums before the feed-forward norm and before the next layer's norm (or
	// the final one), plus the embedding sum before the first norm
	if want := 2*cfg.Layers + 1; len(tp.AddNorm) != want {
		t.Errorf("training plan: %d fused add+norm, want %d", len(tp.AddNorm), want)
	}
	dec, _, _ := decodePlanFor(t, cfg, 3, 16, 0)
	check(t, dec)
	if want := 2*cfg.Layers + 1; len(dec.AddNorm) != want {
		t.Errorf("decode plan: %d fused add+norm, want %d", len(dec.AddNorm), want)
	}
	if dec.Counts[KPermute] != 0 {
		t.Errorf("decode plan: %d permute copies, want none (one-long axes only)", dec.Counts[KPermute])
	}
	// GEMM groups: the Q, K and V projections of each MHA layer, the K and V ones of MQA
	checkGroups(t, "MHA training plan", tp, cfg.Layers, 3)
	checkGroups(t, "MHA decode plan", dec, cfg.Layers, 3)
	mqa := cfg
	mqa.KVHeads = 1
	mdec, _, _ := decodePlanFor(t, mqa, 3, 16, 0)
	checkGroups(t, "MQA decode plan", mdec, cfg.Layers, 2)
}

// checkGroups checks that a plan has n GEMM groups of size members each, and that every group's
// products read one input, have one shape, and multiply parameters.
func checkGroups(t *testing.T, name string, pl *Plan, n, size int) {
	t.Helper()
	if len(pl.GEMMGroups) != n {
		t.Errorf("%s: %d GEMM groups, want %d", name, len(pl.GEMMGroups), n)
	}
	for f, g := range pl.GEMMGroups {
		if len(g) != size || g[0] != f {
			t.Errorf("%s: group %v at node %d, want %d products starting there", name, g, f, size)
			continue
		}
		first := pl.Nodes[f]
		for k, j := range g {
			pn := pl.Nodes[j]
			switch {
			case k > 0 && j <= g[k-1]:
				t.Errorf("%s: group %v is not in execution order", name, g)
			case pn.Kind != KMatMul || pn.In[0] != first.In[0] || pn.TransA != first.TransA || pn.TransB != first.TransB:
				t.Errorf("%s: node %d (%v) does not multiply node %d's input the same way", name, j, pn.Kind, f)
			case !slices.Equal(pn.Shape, first.Shape) || pl.Nodes[pl.Nodes[pn.In[1]].Alias].Kind != KParam:
				t.Errorf("%s: node %d has shape %v (group %v) or multiplies a %v", name, j, pn.Shape, first.Shape, pl.Nodes[pn.In[1]].Kind)
			}
		}
	}
}

// permuteAxes reads the same input element for every output element as the plain
// permutation, on random shapes and permutations (with ones and mergeable runs).
func TestPermuteAxes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 500; trial++ {
		rank := 1 + rng.IntN(6)
		src := make([]int, rank)
		for k := range src {
			src[k] = []int{1, 1, 2, 3, 4}[rng.IntN(5)]
		}
		axes := rng.Perm(rank)
		if trial%3 == 0 { // attention's grouped layout [B, T, kv, r, dk] → [B, kv, r, T, dk]
			src, axes = []int{2, 3, 2, 1 + rng.IntN(2), 4}, []int{0, 2, 3, 1, 4}
			rank = len(src)
		}
		n := 1
		for _, l := range src {
			n *= l
		}
		inStride := make([]int, rank)
		for k, s := rank-1, 1; k >= 0; k-- {
			inStride[k] = s
			s *= src[k]
		}
		lens, strides := permuteAxes(src, axes)
		if len(lens) > rank {
			t.Fatalf("%v %v: %d axes from %d", src, axes, len(lens), rank)
		}
		if trial%3 == 0 && len(lens) != 4 { // [B, T, kv, r, dk] → [B, kv·r, T, dk]
			t.Errorf("%v %v: axes %v, strides %v", src, axes, lens, strides)
		}
		for i := 0; i < n; i++ {
			want, rem := 0, i
			for k := rank - 1; k >= 0; k-- {
				l := src[axes[k]]
				want += rem % l * inStride[axes[k]]
				rem /= l
			}
			got, rem := 0, i
			for k := len(lens) - 1; k >= 0; k-- {
				got += rem % lens[k] * strides[k]
				rem /= lens[k]
			}
			if got != want {
				t.Fatalf("src %v axes %v (→ %v %v): element %d reads %d, want %d", src, axes, lens, strides, i, got, want)
			}
		}
	}
}

// Every kind has its own name, and every op type of the table classifies to its own kind.
func TestKindSpecs(t *testing.T) {
	names := map[string]Kind{}
	for k := range kindSpecs {
		kind := Kind(k)
		name := kind.String()
		if name == "" {
			t.Errorf("kind %d has no name", k)
		}
		if other, ok := names[name]; ok {
			t.Errorf("kinds %d and %d are both named %q", other, k, name)
		}
		names[name] = kind
		if op := kindSpecs[k].op; op != nil && opKinds[reflect.TypeOf(op)] != kind {
			t.Errorf("%T classifies to %v, want %v", op, opKinds[reflect.TypeOf(op)], kind)
		}
		if op := kindSpecs[k].op; op != nil && !isComputed(kind) {
			t.Errorf("%v lowers %T but computes no value", kind, op)
		}
	}
}
