package study

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
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
