// Command xling trains, serves, indexes and evaluates cross-lingual
// retrieval encoders for Weaviate. Each subcommand lives in the package that
// does its work; this file only wires them up.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xling-ir/xling/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Dispatch(ctx, "xling", commands(), os.Args[1:], os.Stderr)
	stop()
	switch {
	case errors.Is(err, cli.ErrUsage):
		fmt.Fprintln(os.Stderr, "xling:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "xling:", err)
		os.Exit(1)
	}
}

func commands() []cli.Command {
	return []cli.Command{
		{Name: "version", Summary: "print the versions of xling, Go and libtorch", Run: runVersion},
	}
}
