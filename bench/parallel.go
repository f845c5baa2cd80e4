package bench

import (
	"context"
	"fmt"
	"io"
)

// StepRate is one side of TrainParallel: trainer.StepThroughput's numbers.
type StepRate struct {
	PairsPerSecond float64
	CommShare      float64 // of a step, in collectives
	BytesPerStep   int64   // one rank's, handed to collectives
}

// TrainParallel measures data-parallel training on this machine: one
// process on nproc × opts.Threads threads against nproc processes on
// opts.Threads threads each (a c10d group on loopback), training the same
// model on the same global batch with xling train's step, in one run. The
// last line is "ratio <nproc processes / one process>".
func TrainParallel(ctx context.Context, w io.Writer, opts EncodeOptions, nproc int,
	single func(ctx context.Context, dir string, threads int) (StepRate, error),
	group func(ctx context.Context, dir string) (StepRate, error)) error {
	dir, cfg, cleanup, err := withConfig(ModelDir(ctx, opts.Model, opts.Arch, opts.Size))
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Fprintf(w, "model %s: %s; global batch %d pairs, %d tokens per text; xling train's step (gathered InfoNCE + backward + summed gradients + clip + AdamW)\n", dir, Describe(cfg), opts.Batch, opts.Seq)
	one, err := single(ctx, dir, nproc*opts.Threads)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "1 process  x %d threads: %8.1f pairs/s\n", nproc*opts.Threads, one.PairsPerSecond)
	many, err := group(ctx, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d processes x %d thread(s): %8.1f pairs/s; collectives %.1f%% of a step, %s per rank per step\n",
		nproc, opts.Threads, many.PairsPerSecond, 100*many.CommShare, byteSize(many.BytesPerStep))
	fmt.Fprintf(w, "ratio %.3f\n", many.PairsPerSecond/one.PairsPerSecond)
	return nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
