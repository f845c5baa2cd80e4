// Package plot draws the PNG charts of xling's reports with gonum/plot:
// heatmaps of per-language-pair scores, grouped bars across methods and
// settings, and training curves.
package plot

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Heatmap draws value(row, col) for every row and column label, with the
// value written in each cell; cells without a value stay blank.
func Heatmap(path, title, xLabel, yLabel string, rows, cols []string, value func(r, c string) (float64, bool)) error {
	if len(rows) == 0 || len(cols) == 0 {
		return fmt.Errorf("heatmap %s: no rows or columns", path)
	}
	g := grid{rows: len(rows), cols: len(cols), v: make([]float64, len(rows)*len(cols))}
	lo, hi := math.Inf(1), math.Inf(-1)
	var labels plotter.XYLabels
	for i, r := range rows {
		for j, c := range cols {
			v, ok := value(r, c)
			if !ok {
				v = math.NaN()
			} else {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
				labels.XYs = append(labels.XYs, plotter.XY{X: float64(j), Y: float64(i)})
				labels.Labels = append(labels.Labels, fmt.Sprintf("%.2f", v))
			}
			g.v[i*len(cols)+j] = v
		}
	}
	if math.IsInf(lo, 1) {
		return fmt.Errorf("heatmap %s: no values", path)
	}
	if lo == hi {
		hi = lo + 1e-9
	}
	pal := moreland.SmoothBlueRed()
	pal.SetMin(lo)
	pal.SetMax(hi)
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	h := plotter.NewHeatMap(g, pal.Palette(64))
	h.NaN = color.White
	p.Add(h)
	if lbl, err := plotter.NewLabels(labels); err == nil {
		for i := range lbl.TextStyle {
			lbl.TextStyle[i].Font.Size = vg.Points(7)
			lbl.TextStyle[i].XAlign, lbl.TextStyle[i].YAlign = draw.XCenter, draw.YCenter
		}
		p.Add(lbl)
	}
	p.X.Tick.Marker = names(cols)
	p.Y.Tick.Marker = names(rows)
	size := vg.Length(max(len(cols), 4)) * 0.55 * vg.Inch
	return p.Save(size+1.5*vg.Inch, vg.Length(max(len(rows), 4))*0.45*vg.Inch+1.2*vg.Inch, path)
}

type grid struct {
	rows, cols int
	v          []float64
}

func (g grid) Dims() (c, r int)   { return g.cols, g.rows }
func (g grid) Z(c, r int) float64 { return g.v[r*g.cols+c] }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }

// names labels integer ticks with names.
type names []string

func (n names) Ticks(lo, hi float64) []plot.Tick {
	var t []plot.Tick
	for i, s := range n {
		if float64(i) >= lo-0.5 && float64(i) <= hi+0.5 {
			t = append(t, plot.Tick{Value: float64(i), Label: s})
		}
	}
	return t
}

// Series is one bar per group. (Spreads over seeds go in the report's
// tables: gonum's error bars cannot follow a bar's offset within a group.)
type Series struct {
	Name   string
	Values []float64
}

// Bars draws grouped bars: one group per label, one bar per series.
func Bars(path, title, yLabel string, groups []string, series []Series) error {
	if len(series) == 0 || len(groups) == 0 {
		return fmt.Errorf("bars %s: nothing to draw", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	w := vg.Points(min(60/float64(len(series)), 14))
	for i, s := range series {
		if len(s.Values) != len(groups) {
			return fmt.Errorf("bars %s: series %s has %d values for %d groups", path, s.Name, len(s.Values), len(groups))
		}
		b, err := plotter.NewBarChart(plotter.Values(s.Values), w)
		if err != nil {
			return err
		}
		b.LineStyle.Width = vg.Length(0)
		b.Color = plotutil.Color(i)
		b.Offset = w * vg.Length(float64(i)-float64(len(series)-1)/2)
		p.Add(b)
		p.Legend.Add(s.Name, b)
	}
	p.Legend.Top = true
	p.NominalX(groups...)
	return p.Save(vg.Length(max(len(groups), 3))*1.6*vg.Inch+vg.Inch, 4*vg.Inch, path)
}

// Line is one curve.
type Line struct {
	Name string
	X, Y []float64
}

// Lines draws curves on shared axes.
func Lines(path, title, xLabel, yLabel string, lines []Line) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	for i, l := range lines {
		pts := make(plotter.XYs, len(l.X))
		for j := range l.X {
			pts[j] = plotter.XY{X: l.X[j], Y: l.Y[j]}
		}
		ln, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		ln.Color = plotutil.Color(i)
		ln.Dashes = plotutil.Dashes(i)
		p.Add(ln)
		p.Legend.Add(l.Name, ln)
	}
	p.Legend.Top = true
	return p.Save(7*vg.Inch, 4*vg.Inch, path)
}
