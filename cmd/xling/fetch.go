package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/xling-ir/xling/fetch"
	"github.com/xling-ir/xling/internal/cli"
)

// runFetch downloads the evaluation data from its official sources.
func runFetch(ctx context.Context, fs *flag.FlagSet, args []string) error {
	dir := fs.String("data-dir", "data", "directory to fill; files already there with the right checksum are kept (env XLING_DATA_DIR)")
	sets := fs.String("datasets", "xquad-r,mlqa-r,miracl", "comma-separated: xquad-r, mlqa-r, miracl (dev topics and qrels)")
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	files := fetch.Select(fetch.Official, strings.Split(*sets, ",")...)
	if len(files) == 0 {
		return fmt.Errorf("%w: --datasets %q names no known dataset (want xquad-r, mlqa-r, miracl)", cli.ErrUsage, *sets)
	}
	n, err := fetch.Fetch(ctx, *dir, files, fetch.Options{Logger: log})
	if err != nil {
		return err
	}
	log.Info("data ready", "dir", *dir, "files", len(files), "downloaded", n)
	return nil
}
