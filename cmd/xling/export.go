package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/vectorizer"
)

// runExport writes a static model directory in model2vec's layout.
func runExport(_ context.Context, fs *flag.FlagSet, args []string) error {
	model := fs.String("model", "", "xling static model directory (env XLING_MODEL)")
	out := fs.String("out", "", "directory to write the model2vec layout into")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: xling export --model DIR --out DIR\n\nWrites a static model as model2vec writes its models: StaticModel.from_pretrained and\nSentenceTransformer load it, and so does xling. They add no special tokens, so its\nvectors are close to the source model's, not equal.")
		fs.PrintDefaults()
	}
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	if *model == "" || *out == "" {
		return fmt.Errorf("%w: --model and --out are required", cli.ErrUsage)
	}
	if err := vectorizer.WriteModel2Vec(*model, *out); err != nil {
		return err
	}
	log.Info("wrote model2vec layout", "from", *model, "to", *out)
	return nil
}
