package trainer

import (
	"context"
	"testing"
	"time"

	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// BenchmarkTrainStep reports training pairs/s of the 4-layer, 256-wide
// model at batch 32, 64 tokens a text: `xling bench train` compares the
// same with PyTorch.
func BenchmarkTrainStep(b *testing.B) {
	cfg, _ := vectorizer.SizeConfig("small", 4000)
	dir := vectorizertest.Model(b, cfg, vectorizer.DefaultOptions(), 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rate, err := Throughput(context.Background(), dir, 32, 64, 1, 3*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(rate, "pairs/s")
	}
}
