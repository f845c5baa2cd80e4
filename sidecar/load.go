package sidecar

import (
	"context"
	"path/filepath"

	"github.com/xling-ir/xling/vectorizer"
)

// LoadDirs returns a loader for Run that opens the model directory dir
// for passages (and queries), and queryDir, when not empty, for queries,
// into opts. Each model gets lo, with batches of opts.Limits.MaxTexts; a
// model is named after its directory in /meta.
func LoadDirs(opts Options, dir, queryDir string, lo vectorizer.LoadOptions) func(context.Context) (Options, func(), error) {
	lo.BatchSize = opts.Limits.MaxTexts
	return func(context.Context) (Options, func(), error) {
		var closers []func()
		cleanup := func() {
			for _, c := range closers {
				c()
			}
		}
		open := func(dir string) (Model, error) {
			v, err := vectorizer.Load(dir, lo)
			if err != nil {
				return Model{}, err
			}
			closers = append(closers, v.Close)
			return FromVectorizer(filepath.Base(filepath.Clean(dir)), v), nil
		}
		var err error
		if opts.Passage, err = open(dir); err != nil {
			return opts, nil, err
		}
		if queryDir != "" {
			q, err := open(queryDir)
			if err != nil {
				cleanup()
				return opts, nil, err
			}
			opts.Query = &q
		}
		return opts, cleanup, nil
	}
}
