package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xling-ir/xling/experiment"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/internal/shareddata"
)

// runExperiment runs (or resumes) the study and prints where its report is.
func runExperiment(ctx context.Context, fs *flag.FlagSet, args []string) error {
	config := fs.String("config", "", "study config (JSON); empty means the embedded default (experiment/default.json)")
	budget := fs.String("budget", experiment.BudgetDemo, "demo (one seed, sampled questions: ~15 min on 2 cores), full (3 seeds, everything), or a step multiplier N for a GPU or a longer run")
	out := fs.String("out", "study", "run directory: models, evaluations, report.md, report.json, charts; rerunning resumes it")
	dataDir := fs.String("data-dir", "", "directory holding the datasets the config names; empty means ../shared/data found upward (env XLING_DATA_DIR)")
	wv := addWeaviateFlags(fs) // local keeps its data in --out
	threads := addThreadsFlag(fs)
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	conn, err := wv.connection(true)
	if err != nil {
		return err
	}
	cfg := experiment.Default()
	if *config != "" {
		if cfg, err = experiment.Load(*config); err != nil {
			return err
		}
	}
	cfg, err = cfg.WithBudget(*budget)
	if err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	if *dataDir == "" {
		if *dataDir, err = shareddata.Dir(); err != nil {
			return fmt.Errorf("%w (or give --data-dir)", err)
		}
	}
	rep, err := experiment.Run(ctx, cfg, *budget, experiment.Options{
		Out: *out, DataDir: *dataDir, Threads: *threads, Logger: log, Progress: os.Stderr,
		Weaviate: conn,
	})
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(*out)
	fmt.Printf("%s\n\nreport: %s (and report.json, charts beside it)\n", rep.Conclusion, filepath.Join(abs, "report.md"))
	return nil
}
