// Command gotch-adapt builds the copy of gotch that xling compiles against:
// gotch adapted to the libtorch on this machine, used through go.work.
// `make deps` runs it; it is idempotent.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/xling-ir/xling/internal/gotchadapt"
)

func main() {
	var (
		libtorch = flag.String("libtorch", os.Getenv("LIBTORCH"), "libtorch directory holding include/ and lib/; empty means Debian's libtorch-dev (env LIBTORCH)")
		out      = flag.String("out", ".build/gotch", "where the adapted gotch copy goes")
		work     = flag.String("work", "go.work", "the go.work file to generate")
		version  = flag.String("gotch", "v0.8.0", "gotch version; must match go.mod")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *libtorch, *out, *work, *version); err != nil {
		fmt.Fprintln(os.Stderr, "gotch-adapt:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, libtorch, out, work, version string) error {
	lt, err := gotchadapt.Detect(libtorch)
	if err != nil {
		return err
	}
	res, err := gotchadapt.Adapt(ctx, gotchadapt.Options{
		GotchVersion: version,
		Libtorch:     lt,
		OutDir:       out,
		WorkFile:     work,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	state := "adapted"
	if res.UpToDate {
		state = "up to date"
	}
	log.Info("gotch "+state, "dir", res.Dir, "libtorch", lt.String(), "stubbed", len(res.Stubbed))
	return nil
}
