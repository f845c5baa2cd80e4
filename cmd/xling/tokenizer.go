package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

// runTokenizerTrain trains a tokenizer.json on text files.
func runTokenizerTrain(ctx context.Context, fs *flag.FlagSet, args []string) error {
	out := fs.String("out", "tokenizer.json", "where to write tokenizer.json")
	vocab := fs.Int("vocab-size", 30000, "vocabulary size, special tokens included")
	minFreq := fs.Int("min-frequency", 2, "fewest occurrences of a merged piece (wordpiece)")
	kind := fs.String("type", "wordpiece", "wordpiece (BERT-style, xling's trainer) or unigram (XLM-R-style, through spm_train)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: xling tokenizer train [flags] FILE...  (text files, one sentence or paragraph per line)")
		fs.PrintDefaults()
	}
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: give at least one text file", cli.ErrUsage)
	}
	start := time.Now()
	switch *kind {
	case "unigram":
		err = tokenize.TrainUnigramFiles(ctx, fs.Args(), *out, *vocab)
	case "wordpiece":
		err = tokenize.TrainWordPieceFiles(ctx, fs.Args(), *out, tokenize.TrainOptions{
			VocabSize: *vocab, MinFrequency: *minFreq,
			Progress: func(done, total int) {
				log.Info("training tokenizer", "merges", done, "of_at_most", total, "elapsed", time.Since(start).Round(time.Second))
			},
		})
	default:
		return fmt.Errorf("%w: --type %q (want wordpiece or unigram)", cli.ErrUsage, *kind)
	}
	if err != nil {
		return err
	}
	log.Info("wrote tokenizer", "path", *out, "seconds", time.Since(start).Seconds())
	return nil
}
