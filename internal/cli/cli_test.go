package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	var ran []string
	cmd := func(name string) Command {
		return Command{Name: name, Summary: "does " + name, Run: func(_ context.Context, fs *flag.FlagSet, args []string) error {
			n := fs.Int("n", 0, "a number")
			if err := fs.Parse(args); err != nil {
				return err
			}
			ran = append(ran, fs.Name()+" "+strings.Join(fs.Args(), ",")+" n="+string(rune('0'+*n)))
			return nil
		}}
	}
	cmds := []Command{cmd("tokenizer"), cmd("tokenizer train"), cmd("encode")}
	var out bytes.Buffer
	ctx := context.Background()

	if err := Dispatch(ctx, "xling", cmds, []string{"tokenizer", "train", "-n", "3", "x"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := Dispatch(ctx, "xling", cmds, []string{"encode"}, &out); err != nil {
		t.Fatal(err)
	}
	want := []string{"xling tokenizer train x n=3", "xling encode  n=0"}
	if strings.Join(ran, "|") != strings.Join(want, "|") {
		t.Fatalf("ran %q, want %q", ran, want)
	}

	out.Reset()
	err := Dispatch(ctx, "xling", cmds, []string{"bogus"}, &out)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), `"bogus"`) || !strings.Contains(out.String(), "tokenizer train") {
		t.Fatalf("unknown command: err %v, output %q", err, out.String())
	}
	if err := Dispatch(ctx, "xling", cmds, nil, &out); !errors.Is(err, ErrUsage) {
		t.Fatalf("no command: err %v", err)
	}
	out.Reset()
	if err := Dispatch(ctx, "xling", cmds, []string{"encode", "-h"}, &out); err != nil || !strings.Contains(out.String(), "-n int") {
		t.Fatalf("-h: err %v, output %q", err, out.String())
	}
	if err := Dispatch(ctx, "xling", cmds, []string{"encode", "-n", "x"}, &out); err == nil {
		t.Fatal("a bad flag value was accepted")
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("XLING_TEST_SET", "")
	if got := Env("XLING_TEST_SET", "def"); got != "" {
		t.Fatalf("Env of a variable set to empty = %q, want empty", got)
	}
	if got := Env("XLING_TEST_UNSET_12345", "def"); got != "def" {
		t.Fatalf("Env of an unset variable = %q, want def", got)
	}
}
