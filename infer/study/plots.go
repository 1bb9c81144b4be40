package study

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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
func writePlots(dir string, res Results) ([]string, error) {
	var files []string
	for _, task := range []string{"lm", "translate"} {
		rows := rowsOf(res, task)
		if len(rows) == 0 {
			continue
		}
		name := task + "-loss.png"
		if err := lossPlot(filepath.Join(dir, name), task, rows, res.Seeds); err != nil {
			return nil, err
		}
		files = append(files, name)
		name = task + "-quality-speed.png"
		if err := qualityPlot(filepath.Join(dir, name), task, rows, res.Seeds); err != nil {
			return nil, err
		}
		files = append(files, name)
	}
	return files, nil
}

// lossPlot draws the training and validation curves, with the legend in a column of its own
// to the right so that it never covers a curve.
func lossPlot(path, task string, rows []KindResult, seeds int) error {
	p, legend, err := lossCurves(task, rows, seeds)
	if err != nil {
		return err
	}
	return saveWithLegend(p, legend, 9*vg.Inch, 4.5*vg.Inch, 2.6*vg.Inch, path)
}

// lossCurves builds the loss plot: the noisy per-step training losses thin and faded, the
// validation curves bold on top of them, and the loss axis cut just above the highest
// validation point (when there is one), so that the first steps' losses, several times the
// later ones, do not flatten the part of the curves that tells the models apart.
func lossCurves(task string, rows []KindResult, seeds int) (*plot.Plot, plot.Legend, error) {
	p := plot.New()
	p.Title.Padding = vg.Points(6)
	p.Title.Text = fmt.Sprintf("%s: training and validation loss", task)
	p.X.Label.Text = "training step"
	p.Y.Label.Text = "cross-entropy (nats per token)"
	p.Add(plotter.NewGrid())
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	for i, r := range rows {
		train := make(plotter.XYs, len(r.TrainCurve))
		for j, pt := range r.TrainCurve {
			train[j] = plotter.XY{X: float64(pt.Step), Y: pt.Loss}
		}
		l, err := plotter.NewLine(train)
		if err != nil {
			return nil, legend, err
		}
		cr, cg, cb, _ := palette[i%len(palette)].RGBA()
		l.Color, l.Width = color.NRGBA{R: uint8(cr >> 8), G: uint8(cg >> 8), B: uint8(cb >> 8), A: 110}, vg.Points(0.6)
		p.Add(l)
		legend.Add(rowLabel(r, seeds)+" train (label-smoothed)", l)
	}
	top := math.Inf(-1)
	for i, r := range rows {
		if len(r.ValidCurve) == 0 {
			continue
		}
		c := palette[i%len(palette)]
		valid := make(plotter.XYs, len(r.ValidCurve))
		for j, pt := range r.ValidCurve {
			valid[j] = plotter.XY{X: float64(pt.Step), Y: pt.Loss}
			top = max(top, pt.Loss)
		}
		lp, pts, err := plotter.NewLinePoints(valid)
		if err != nil {
			return nil, legend, err
		}
		lp.Color, lp.Width, lp.Dashes = c, vg.Points(2), []vg.Length{vg.Points(5), vg.Points(2)}
		pts.Color, pts.Shape, pts.Radius = c, draw.CircleGlyph{}, vg.Points(3)
		p.Add(lp, pts)
		legend.Add(rowLabel(r, seeds)+" validation", lp, pts)
	}
	if top > p.Y.Min && top < p.Y.Max {
		p.Y.Max = top + 0.1*(top-p.Y.Min)
	}
	return p, legend, nil
}

// saveWithLegend writes p as a PNG of width w and height h with legend drawn in a column of
// width legendW to the right of the plot; a legend whose labels need more room widens the
// column and the image by as much, so that no label is cut off.
func saveWithLegend(p *plot.Plot, legend plot.Legend, w, h, legendW vg.Length, path string) error {
	if need := legend.Rectangle(draw.New(vgimg.New(w, h))).Size().X + vg.Points(12); need > legendW {
		w, legendW = w+need-legendW, need
	}
	img := vgimg.New(w, h)
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -legendW, 0, 0))
	legend.Draw(draw.Crop(dc, w-legendW, 0, 0, -vg.Points(20)))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// errorPoint is one model in the quality-speed plot: a point with its intervals.
type errorPoint struct {
	plotter.XYs
	plotter.XErrors
	plotter.YErrors
}

// qualityPlot draws quality against decoding speed, like with like: translation pairs
// beam-4 BLEU with beam-4 decoding at the large batch, an LM its test perplexity with greedy
// decoding at the large batch. Each model is a labelled point with its 95 % quality interval
// (vertical) and the min–max of its timed runs (horizontal); the labels replace a legend.
func qualityPlot(path, task string, rows []KindResult, seeds int) error {
	p, err := qualityChart(task, rows, seeds)
	if err != nil {
		return err
	}
	return p.Save(qualityW, 4.5*vg.Inch, path)
}

// qualityW is the quality plot's width; labelRoom the part of it right of the y axis.
const qualityW, labelRoom = 7 * vg.Inch, 6 * vg.Inch

// qualityChart builds the quality-speed plot of qualityPlot.
func qualityChart(task string, rows []KindResult, seeds int) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Padding = vg.Points(6)
	mode := "greedy"
	if task == "translate" {
		mode = "beam4"
	}
	batch := "?"
	if len(rows) > 0 {
		batch = batchOf(rows[0], mode, false)
	}
	if task == "translate" {
		p.Title.Text = fmt.Sprintf("translation: test BLEU against decoding speed, both beam 4, batch %s", batch)
		p.Y.Label.Text = "test BLEU, beam 4 (bars: 95 % bootstrap interval)"
		p.X.Label.Text = fmt.Sprintf("beam-4 decoder µs per sequence-step, batch %s (median; bars: min–max)", batch)
	} else {
		p.Title.Text = fmt.Sprintf("language model: test perplexity against greedy decoding speed, batch %s", batch)
		p.Y.Label.Text = "test perplexity per token (bars: 95 % bootstrap interval)"
		p.X.Label.Text = fmt.Sprintf("greedy µs per generated token, batch %s (median; bars: min–max)", batch)
	}
	var labels plotter.XYLabels
	for i, r := range rows {
		t, ok := timing(r, mode, false)
		if !ok {
			continue
		}
		pt := errorPoint{XYs: plotter.XYs{{}}, XErrors: plotter.XErrors{{}}, YErrors: plotter.YErrors{{}}}
		if task == "translate" {
			pt.XYs[0] = plotter.XY{X: t.RowStepUS, Y: r.BLEUBeam4}
			pt.XErrors[0].Low, pt.XErrors[0].High = t.RowStepUS-t.RowStepUSMin, t.RowStepUSMax-t.RowStepUS
			if r.BLEUCI != nil {
				pt.YErrors[0].Low, pt.YErrors[0].High = r.BLEUBeam4-r.BLEUCI[0], r.BLEUCI[1]-r.BLEUBeam4
			}
		} else {
			pt.XYs[0] = plotter.XY{X: t.DecoderUS, Y: r.TestPPL}
			pt.XErrors[0].Low, pt.XErrors[0].High = t.DecoderUS-t.DecoderUSMin, t.DecoderUSMax-t.DecoderUS
			if r.TestLnPPLCI != nil {
				pt.YErrors[0].Low, pt.YErrors[0].High = r.TestPPL-math.Exp(r.TestLnPPLCI[0]), math.Exp(r.TestLnPPLCI[1])-r.TestPPL
			}
		}
		c := palette[i%len(palette)]
		s, err := plotter.NewScatter(pt)
		if err != nil {
			return nil, err
		}
		s.Color, s.Shape, s.Radius = c, draw.CircleGlyph{}, vg.Points(4)
		xe, err := plotter.NewXErrorBars(pt)
		if err != nil {
			return nil, err
		}
		ye, err := plotter.NewYErrorBars(pt)
		if err != nil {
			return nil, err
		}
		xe.Color, ye.Color = c, c
		p.Add(xe, ye, s)
		labels.XYs = append(labels.XYs, pt.XYs[0])
		labels.Labels = append(labels.Labels, fmt.Sprintf("  %s (%d K/V heads)", rowLabel(r, seeds), r.KVHeads))
	}
	p.Add(plotter.NewGrid())
	pad(&p.X, 0.4)
	pad(&p.Y, 0.15)
	if len(labels.XYs) > 0 {
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, err
		}
		p.Add(l)
		fitLabels(&p.X, l, labelRoom)
	}
	return p, nil
}

// fitLabels moves the end of the x axis right until each label, drawn to the right of its
// point, ends inside a plot area w wide.
func fitLabels(a *plot.Axis, l *plotter.Labels, w vg.Length) {
	for i, xy := range l.XYs {
		if f := float64(l.TextStyle[i].Width(l.Labels[i]) / w); f < 0.9 {
			a.Max = max(a.Max, (xy.X-f*a.Min)/(1-f))
		}
	}
}

// pad widens an axis: its top by frac of its span (room for the point labels), its bottom by frac/3.
func pad(a *plot.Axis, frac float64) {
	span := a.Max - a.Min
	if span <= 0 {
		span = math.Max(math.Abs(a.Max), 1)
	}
	a.Min -= span * frac / 3
	a.Max += span * frac
}
