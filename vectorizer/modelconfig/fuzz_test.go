package modelconfig

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead: any config.json is a valid config or an error naming
// the field, never a panic; a valid one has a finite, positive size.
func FuzzRead(f *testing.F) {
	for _, seed := range []string{
		`{"model_type":"bert","vocab_size":100,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16,"hidden_act":"gelu","max_position_embeddings":16,"type_vocab_size":2,"layer_norm_eps":1e-12}`,
		`{"model_type":"static","vocab_size":100,"embedding_size":8,"hidden_size":8,"max_position_embeddings":16}`,
		`{"model_type":"xlm-roberta","num_attention_heads":0}`, `{"model_type":"bert","hidden_size":1e300}`, `[]`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Read(path)
		if err != nil {
			return
		}
		if p := c.Params(); p <= 0 || math.IsInf(p, 0) || math.IsNaN(p) {
			t.Fatalf("valid config with %g parameters", p)
		}
	})
}
