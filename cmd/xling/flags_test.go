package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/xling-ir/xling/internal/cli"
)

// TestFlagGroups: across every command, a variable sets one flag name, and
// the shared flags (Weaviate, model, threads, logs) have one default.
func TestFlagGroups(t *testing.T) {
	type seen struct{ command, flag, def string }
	byEnv := map[string]seen{}
	byFlag := map[string]seen{}
	shared := map[string]bool{"weaviate": true, "grpc": true, "model": true, "threads": true, "log-level": true, "log-format": true}
	for _, c := range commands() {
		fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if err := c.Run(context.Background(), fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("xling %s -h: %v", c.Name, err)
		}
		fs.VisitAll(func(f *flag.Flag) {
			now := seen{c.Name, f.Name, f.DefValue}
			if env := cli.EnvName(f.Usage); env != "" {
				if !strings.HasPrefix(env, "XLING_") {
					t.Errorf("xling %s --%s reads %s: xling's variables start with XLING_", c.Name, f.Name, env)
				}
				if was, ok := byEnv[env]; ok && was.flag != f.Name {
					t.Errorf("%s sets --%s of %s and --%s of %s", env, was.flag, was.command, f.Name, c.Name)
				}
				byEnv[env] = now
			}
			if !shared[f.Name] {
				return
			}
			if cli.EnvName(f.Usage) == "" {
				t.Errorf("xling %s --%s names no variable", c.Name, f.Name)
			}
			if was, ok := byFlag[f.Name]; ok && was.def != f.DefValue {
				t.Errorf("--%s defaults to %q in %s but %q in %s", f.Name, was.def, was.command, f.DefValue, c.Name)
			}
			byFlag[f.Name] = now
		})
	}
	for name := range shared {
		if _, ok := byFlag[name]; !ok {
			t.Errorf("no command has --%s", name)
		}
	}
}

// TestLocalWeaviateOnlyWhereStarted: --weaviate local is refused, with the
// reason, by the commands that need a Weaviate that outlives them.
func TestLocalWeaviateOnlyWhereStarted(t *testing.T) {
	for _, args := range [][]string{
		{"index", "--dataset", "x", "--model", "m"},
		{"eval", "--dataset", "x"},
		{"miracl", "--corpus", "c", "--topics", "t"},
	} {
		err := cli.Dispatch(context.Background(), "xling", commands(), append(args, "--weaviate", localWeaviate), io.Discard)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "needs a running Weaviate") {
			t.Errorf("xling %s --weaviate local: %v, want a usage error saying it needs a running Weaviate", args[0], err)
		}
	}
}
