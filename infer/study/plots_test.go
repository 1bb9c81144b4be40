package study

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

// TestLossPlotFitsLongLabels: the loss plot's legend column grows with its labels (an
// uptrained row's label is long), so the PNG is wider and no label is cut off.
func TestLossPlotFitsLongLabels(t *testing.T) {
	curve := []CurvePoint{{Step: 1, Loss: 5}, {Step: 100, Loss: 3}, {Step: 200, Loss: 2.5}}
	width := func(attention string) int {
		path := filepath.Join(t.TempDir(), "loss.png")
		rows := []KindResult{{Task: "translate", Attention: attention, Seed: 1, TrainCurve: curve, ValidCurve: curve}}
		if err := lossPlot(path, "translate", rows, 1); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cfg, err := png.DecodeConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Width
	}
	short, long := width("mha"), width("mqa (uptrained from mha, 150 steps) with a label that runs on")
	if long <= short {
		t.Errorf("plot with a long label is %d pixels wide, with a short one %d: the legend did not grow", long, short)
	}
}

// TestLossPlotRange: the loss axis ends just above the highest validation point, below the
// first steps' training losses, and shows every validation point; without validation it
// shows all of the training curve.
func TestLossPlotRange(t *testing.T) {
	train := []CurvePoint{{Step: 1, Loss: 9.5}, {Step: 50, Loss: 6}, {Step: 100, Loss: 3.5}, {Step: 200, Loss: 2.2}}
	valid := []CurvePoint{{Step: 100, Loss: 4.1}, {Step: 200, Loss: 2.9}}
	cases := []struct {
		name         string
		valid        []CurvePoint
		wantMax      float64
		above, below float64
	}{
		{"with validation", valid, 4.1 + 0.1*(4.1-2.2), 4.1, 9.5},
		{"training only", nil, 9.5, 9.5, math.Inf(1)},
	}
	for _, c := range cases {
		rows := []KindResult{{Attention: "mha", TrainCurve: train, ValidCurve: c.valid}, {Attention: "mqa", TrainCurve: train}}
		p, _, err := lossCurves("lm", rows, 1)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(p.Y.Max-c.wantMax) > 1e-9 || p.Y.Max < c.above || p.Y.Max >= c.below || p.Y.Min > 2.2 {
			t.Errorf("%s: loss axis %v..%v, want %v..%v (above %v, below %v)", c.name, p.Y.Min, p.Y.Max, p.Y.Min, c.wantMax, c.above, c.below)
		}
	}
}

// TestQualityPlotFitsLabels: fitLabels moves the x axis's end right far enough that every
// label, drawn to the right of its point, ends inside the plot, however long the label (an
// uptrained or a continued row's is) and however far right its point; the quality plot's
// axis ends past each label's.
func TestQualityPlotFitsLabels(t *testing.T) {
	labels := plotter.XYLabels{XYs: plotter.XYs{{X: 1.6, Y: 15}, {X: 2.4, Y: 18}, {X: 2.6, Y: 17}},
		Labels: []string{"  mqa (1 K/V heads)", "  " + continuedLabel(600) + " (8 K/V heads)", "  " + uptrainedLabel("gqa:2", 600) + " (2 K/V heads)"}}
	l, err := plotter.NewLabels(labels)
	if err != nil {
		t.Fatal(err)
	}
	ends := func(a plot.Axis) {
		t.Helper()
		for i, xy := range l.XYs {
			if end := xy.X + float64(l.TextStyle[i].Width(l.Labels[i])/labelRoom)*(a.Max-a.Min); end > a.Max+1e-9 {
				t.Errorf("label %q ends at %.3f, past the axis's end %.3f", l.Labels[i], end, a.Max)
			}
		}
	}
	a := plot.New().X
	a.Min, a.Max = 1.4, 3.0
	fitLabels(&a, l, labelRoom)
	ends(a)

	row := func(attn string, us float64) KindResult {
		return KindResult{Task: "translate", Attention: attn, BLEUBeam4: 17, KVHeads: 8,
			Decode: []DecodeTiming{{Mode: "beam4", Batch: 1024, RowStepUS: us, RowStepUSMin: us, RowStepUSMax: us}}}
	}
	p, err := qualityChart("translate", []KindResult{row("mqa", 1.6), row(continuedLabel(600), 2.4), row(uptrainedLabel("gqa:2", 600), 2.6)}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ends(p.X)
}
