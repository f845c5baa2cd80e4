package vectorizer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/xling-ir/xling/internal/shareddata"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// BenchmarkEncode reports encoder throughput in sentences/s for the small
// (4x256) and BERT-base-shaped models at several batch sizes, 64 tokens per
// text, one thread. `xling bench encode` compares the same with PyTorch.
func BenchmarkEncode(b *testing.B) {
	for _, size := range []string{"small", "base"} {
		vocab := int64(4000)
		cfg, _ := vectorizer.SizeConfig(size, vocab)
		dir := vectorizertest.Model(b, cfg, vectorizer.DefaultOptions(), 1)
		for _, batch := range []int{1, 8, 32, 128} {
			b.Run(fmt.Sprintf("%s/batch=%d", size, batch), func(b *testing.B) {
				v, err := vectorizer.Load(dir, vectorizer.LoadOptions{Threads: 1, BatchSize: batch})
				if err != nil {
					b.Fatal(err)
				}
				defer v.Close()
				rng := rand.New(rand.NewPCG(1, 2))
				toks := make([]vectorizer.Tokens, batch)
				for i := range toks {
					ids := make([]int64, 64)
					for j := range ids {
						ids[j] = 5 + rng.Int64N(vocab-5)
					}
					toks[i].IDs = ids
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := v.EncodeTokens(context.Background(), toks, vectorizer.Passage); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "sentences/s")
			})
		}
	}
}

// BenchmarkTokenize reports tokenisation throughput over real multilingual
// sentences (XQuAD-R, all languages), with the query prefix.
func BenchmarkTokenize(b *testing.B) {
	dir, err := shareddata.Dir()
	if err != nil {
		b.Skip(err)
	}
	xquad, err := qa.LoadLAReQA(dir+"/xquad-r", nil)
	if err != nil {
		b.Fatal(err)
	}
	sentences := xquad.CandidateTexts()
	v, err := vectorizer.Load(vectorizertest.Tiny(b), vectorizer.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Tokenize(sentences[i%len(sentences)], vectorizer.Query); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sentences/s")
}
