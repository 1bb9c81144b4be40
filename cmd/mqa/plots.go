package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// palette gives each attention kind a colour.
var palette = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255},
	color.RGBA{R: 214, G: 39, B: 40, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255},
}

// writePlots draws, per task, the loss curves and quality against decoding speed, and
// returns the file names.
func writePlots(dir string, res compareResults) ([]string, error) {
	var files []string
	for _, task := range []string{"lm", "translate"} {
		rows := rowsOf(res, task)
		if len(rows) == 0 {
			continue
		}
		name := task + "-loss.png"
		if err := lossPlot(filepath.Join(dir, name), task, rows); err != nil {
			return nil, err
		}
		files = append(files, name)
		name = task + "-quality-speed.png"
		if err := qualityPlot(filepath.Join(dir, name), task, rows); err != nil {
			return nil, err
		}
		files = append(files, name)
	}
	return files, nil
}

func lossPlot(path, task string, rows []kindResult) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: training and validation loss", task)
	p.X.Label.Text = "training step"
	p.Y.Label.Text = "cross-entropy (nats per token)"
	p.Legend.Top = true
	for i, r := range rows {
		c := palette[i%len(palette)]
		train := make(plotter.XYs, len(r.TrainCurve))
		for j, pt := range r.TrainCurve {
			train[j] = plotter.XY{X: float64(pt.Step), Y: pt.Loss}
		}
		l, err := plotter.NewLine(train)
		if err != nil {
			return err
		}
		l.Color, l.Width = c, vg.Points(0.7)
		p.Add(l)
		p.Legend.Add(r.Attention+" train (label-smoothed)", l)
		if len(r.ValidCurve) > 0 {
			valid := make(plotter.XYs, len(r.ValidCurve))
			for j, pt := range r.ValidCurve {
				valid[j] = plotter.XY{X: float64(pt.Step), Y: pt.Loss}
			}
			lp, pts, err := plotter.NewLinePoints(valid)
			if err != nil {
				return err
			}
			lp.Color, lp.Width, lp.Dashes = c, vg.Points(1.5), []vg.Length{vg.Points(4), vg.Points(2)}
			pts.Color, pts.Shape = c, draw.CircleGlyph{}
			p.Add(lp, pts)
			p.Legend.Add(r.Attention+" validation", lp, pts)
		}
	}
	p.Add(plotter.NewGrid())
	pad(&p.Y, 0.3)
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

func qualityPlot(path, task string, rows []kindResult) error {
	p := plot.New()
	p.X.Label.Text = "cached greedy decoding, µs per output token (large batch)"
	if task == "translate" {
		p.Title.Text = "translation: test BLEU (beam 4) against decoding speed"
		p.Y.Label.Text = "BLEU"
		p.X.Label.Text = "cached greedy decoding, decoder µs per sequence-step (large batch)"
	} else {
		p.Title.Text = "language model: test perplexity against decoding speed"
		p.Y.Label.Text = "test perplexity (per token)"
	}
	for i, r := range rows {
		t, ok := timing(r, "greedy", false)
		if !ok {
			continue
		}
		y := r.TestPPL
		if task == "translate" {
			y = r.BLEUBeam4
		}
		x := t.DecoderUS + t.EncoderUS
		if task == "translate" { // per output token depends on the models' output lengths
			x = t.RowStepUS
		}
		s, err := plotter.NewScatter(plotter.XYs{{X: x, Y: y}})
		if err != nil {
			return err
		}
		s.Color, s.Shape, s.Radius = palette[i%len(palette)], draw.CircleGlyph{}, vg.Points(5)
		p.Add(s)
		p.Legend.Add(fmt.Sprintf("%s (%d K/V heads)", r.Attention, r.KVHeads), s)
	}
	p.Add(plotter.NewGrid())
	pad(&p.X, 0.15)
	pad(&p.Y, 0.35)
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(6*vg.Inch, 4.5*vg.Inch, path)
}

// pad widens an axis: its top by frac of its span (room for the legend), its bottom by frac/3.
func pad(a *plot.Axis, frac float64) {
	span := a.Max - a.Min
	if span <= 0 {
		span = math.Max(math.Abs(a.Max), 1)
	}
	a.Min -= span * frac / 3
	a.Max += span * frac
}
