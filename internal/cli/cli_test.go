package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
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

// TestParseEnv: a flag takes the variable its usage names, the command
// line overrides it, a variable set to empty is a value, and a value the
// flag cannot parse is a usage error naming the variable.
func TestParseEnv(t *testing.T) {
	newFlags := func() (*flag.FlagSet, *int, *string, *string) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		n := fs.Int("n", 1, "a number (env XLING_TEST_N)")
		s := fs.String("s", "def", "a string (env XLING_TEST_S)")
		u := fs.String("u", "def", "not from the environment (env is not named here)")
		return fs, n, s, u
	}
	t.Setenv("XLING_TEST_N", "7")
	t.Setenv("XLING_TEST_S", "")
	fs, n, s, u := newFlags()
	if err := Parse(fs, nil); err != nil || *n != 7 || *s != "" || *u != "def" {
		t.Fatalf("from the environment: n=%d s=%q u=%q err=%v, want 7, empty, def", *n, *s, *u, err)
	}
	fs, n, _, _ = newFlags()
	if err := Parse(fs, []string{"-n", "3"}); err != nil || *n != 3 {
		t.Fatalf("the command line over the environment: n=%d err=%v, want 3", *n, err)
	}
	t.Setenv("XLING_TEST_N", "seven")
	fs, _, _, _ = newFlags()
	err := Parse(fs, nil)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "XLING_TEST_N") || !strings.Contains(err.Error(), "seven") {
		t.Fatalf("a bad value in the environment: err %v, want a usage error naming XLING_TEST_N", err)
	}
	for usage, want := range map[string]string{
		"model directory (env XLING_MODEL)": "XLING_MODEL",
		"(env XLING_A) then more":           "",
		"no variable":                       "",
		"(env )":                            "",
	} {
		if got := EnvName(usage); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", usage, got, want)
		}
	}
}
