package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xling-ir/xling/experiment"
	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/internal/shareddata"
)

// runExperiment runs (or resumes) the study and prints where its report is.
func runExperiment(ctx context.Context, fs *flag.FlagSet, args []string) error {
	config := fs.String("config", "", "study config (JSON); empty means the embedded default (experiment/default.json)")
	budget := fs.String("budget", experiment.BudgetDemo, "demo (one seed, sampled questions: ~15 min on 2 cores), full (3 seeds, everything), or a step multiplier N for a GPU or a longer run")
	out := fs.String("out", "study", "run directory: models, evaluations, report.md, report.json, charts; rerunning resumes it")
	dataDir := fs.String("data-dir", cli.Env("XLING_DATA_DIR", ""), "directory holding the datasets the config names; empty means ../shared/data found upward (env XLING_DATA_DIR)")
	url := fs.String("weaviate", cli.Env("XLING_WEAVIATE_URL", ""), "Weaviate REST URL; empty starts a local one with its data in --out (env XLING_WEAVIATE_URL)")
	grpc := fs.String("grpc", cli.Env("XLING_WEAVIATE_GRPC", ""), "Weaviate gRPC host:port with --weaviate (env XLING_WEAVIATE_GRPC)")
	apiKey := cli.APIKey(fs, "XLING_WEAVIATE_API_KEY")
	threads := fs.Int("threads", envInt("XLING_THREADS", 2), "libtorch threads (env XLING_THREADS)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	key, err := apiKey()
	if err != nil {
		return err
	}
	cfg := experiment.Default()
	if *config != "" {
		var err error
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
		Out: *out, DataDir: *dataDir, Threads: *threads, Logger: logger(), Progress: os.Stderr,
		Weaviate: indexer.Connection{URL: *url, GRPC: *grpc, APIKey: key},
	})
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(*out)
	fmt.Printf("%s\n\nreport: %s (and report.json, charts beside it)\n", rep.Conclusion, filepath.Join(abs, "report.md"))
	return nil
}
