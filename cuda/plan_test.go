package cuda

import (
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
	p, err := train.InitParams(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	var step uint64
	g, err := models.Build(p, cfg, shape, models.Options{Train: true, LabelSmoothing: 0.1, DropoutStep: &step})
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(g.Loss, train.ParamNodes(g, p.Names())...)
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
	p, _ := train.InitParams(cfg, 1)
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
