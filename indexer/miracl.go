package indexer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-openapi/strfmt"

	"github.com/xling-ir/xling/miracl"
)

// MIRACLSource names MIRACL objects' dataset in their ids.
const MIRACLSource = "miracl"

// MIRACLID is a MIRACL passage's object id.
func MIRACLID(lang, docid string) strfmt.UUID { return ObjectID(MIRACLSource, lang, docid) }

// ImportMIRACL streams a MIRACL corpus (JSON lines, optionally gzipped)
// into the importer's collection chunk by chunk, never holding it whole:
// each chunk is encoded (encode nil: Weaviate vectorises) and imported. It
// keeps the passages of langs (empty: all) and returns, per language, the
// docids it loaded.
func ImportMIRACL(ctx context.Context, im *Importer, corpus string, langs []string, encode func([]string) ([][]float32, error), log *slog.Logger) (map[string]map[string]bool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keep := map[string]bool{}
	for _, l := range langs {
		keep[l] = true
	}
	loaded := map[string]map[string]bool{}
	const chunk = 2000
	var docs []Doc
	total, start := 0, time.Now()
	flush := func() error {
		if len(docs) == 0 {
			return nil
		}
		var vecs [][]float32
		if encode != nil {
			texts := Texts(docs)
			var err error
			if vecs, err = encode(texts); err != nil {
				return err
			}
		}
		if err := im.Import(ctx, docs, vecs); err != nil {
			return err
		}
		total += len(docs)
		log.Info("miracl import", "passages", total, "per_s", fmt.Sprintf("%.0f", float64(total)/time.Since(start).Seconds()))
		docs = docs[:0]
		return nil
	}
	err := miracl.StreamCorpus(corpus, func(p miracl.Passage) error {
		if len(keep) > 0 && !keep[p.Lang] {
			return nil
		}
		if loaded[p.Lang] == nil {
			loaded[p.Lang] = map[string]bool{}
		}
		loaded[p.Lang][p.DocID] = true
		text := p.Text
		if p.Title != "" {
			text = p.Title + "\n" + p.Text
		}
		docs = append(docs, Doc{ID: MIRACLID(p.Lang, p.DocID), Key: total + len(docs), Lang: p.Lang, Text: text, Parallel: p.DocID, Source: MIRACLSource})
		if len(docs) == chunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loaded, flush()
}
