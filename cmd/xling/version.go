package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"

	"github.com/xling-ir/xling/internal/buildinfo"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/internal/torchx"
)

func runVersion(_ context.Context, fs *flag.FlagSet, args []string) error {
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	fmt.Printf("xling %s\n%s %s/%s\n", buildinfo.Revision(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if torchx.Threads() == 0 {
		fmt.Println("static-only build: static models only, no libtorch")
		return nil
	}
	fmt.Printf("libtorch %s (%d intra-op threads)\nmalloc from %s\n", torchx.Version(), torchx.Threads(), torchx.Allocator())
	return nil
}
