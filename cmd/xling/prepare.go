package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/trainer"
)

// runPrepare turns SQuAD-format data into train.jsonl and valid.jsonl.
func runPrepare(ctx context.Context, fs *flag.FlagSet, args []string) error {
	out := fs.String("out", "", "directory for train.jsonl and valid.jsonl")
	valid := fs.Float64("valid", 0.1, "share of question groups held out for validation")
	seed := fs.Uint64("seed", 1, "seed of the split")
	langs := fs.String("langs", "", "comma-separated languages to keep (LAReQA directories); empty means all")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: xling prepare --out DIR SOURCE...\n  SOURCE is a LAReQA directory of <lang>.json files (xquad-r, mlqa-r),\n  or FILE.json:LANG for a plain SQuAD file in one language")
		fs.PrintDefaults()
	}
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		return fmt.Errorf("%w: give --out and at least one source", cli.ErrUsage)
	}
	keep := splitList(*langs)
	var items []trainer.Item
	for _, src := range fs.Args() {
		ds, err := qa.LoadSource(src, keep)
		if err != nil {
			return err
		}
		items = append(items, trainer.Items(ds)...)
	}
	if len(items) == 0 {
		return fmt.Errorf("no question-passage pairs in %v", fs.Args())
	}
	train, val := trainer.Split(items, *valid, *seed)
	if err := trainer.WriteItems(filepath.Join(*out, "train.jsonl"), train); err != nil {
		return err
	}
	if err := trainer.WriteItems(filepath.Join(*out, "valid.jsonl"), val); err != nil {
		return err
	}
	log.Info("prepared", "train_pairs", len(train), "valid_pairs", len(val), "languages", strings.Join(trainer.Languages(items), ","), "out", *out)
	return nil
}
