package plot

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// The charts are real PNG files of a plausible size; bad input is an error.
func TestChartsArePNG(t *testing.T) {
	dir := t.TempDir()
	langs := []string{"de", "en", "zh"}
	files := map[string]error{
		"heat.png": Heatmap(filepath.Join(dir, "heat.png"), "mAP", "pool", "question", langs, langs, func(r, c string) (float64, bool) {
			if r == "zh" && c == "de" {
				return 0, false // e.g. MLQA-R: no answer there
			}
			return float64(len(r)+len(c)) / 10, true
		}),
		"bars.png": Bars(filepath.Join(dir, "bars.png"), "mAP", "mAP", []string{"mono", "cross", "multi"},
			[]Series{{Name: "hybrid", Values: []float64{0.5, 0.3, 0.2}}, {Name: "bm25", Values: []float64{0.4, 0.01, 0.1}}}),
		"lines.png": Lines(filepath.Join(dir, "lines.png"), "loss", "step", "loss", []Line{{Name: "mono", X: []float64{1, 2, 3}, Y: []float64{3, 2, 1}}}),
	}
	for name, err := range files {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s is not a PNG: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 200 {
			t.Errorf("%s is %dx%d", name, b.Dx(), b.Dy())
		}
	}
	if err := Bars(filepath.Join(dir, "x.png"), "", "", []string{"a"}, []Series{{Name: "s", Values: []float64{1, 2}}}); err == nil {
		t.Error("a series with more values than groups was drawn")
	}
	if err := Heatmap(filepath.Join(dir, "y.png"), "", "", "", nil, langs, nil); err == nil {
		t.Error("a heatmap without rows was drawn")
	}
}
