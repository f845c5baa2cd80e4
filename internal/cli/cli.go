// Package cli dispatches xling's subcommands and gives their flags
// environment fallbacks.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Command is one subcommand of a multi-command program.
type Command struct {
	Name    string // as typed: "index", or "tokenizer train"
	Summary string // one line for the command list
	// Run parses args with fs (already named after the command) and runs.
	Run func(ctx context.Context, fs *flag.FlagSet, args []string) error
}

// ErrUsage marks an error caused by how the command was invoked.
var ErrUsage = errors.New("usage")

// Dispatch finds the command named by the leading args and runs it. It
// returns ErrUsage (wrapped) when no command matches, after listing them.
func Dispatch(ctx context.Context, program string, commands []Command, args []string, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(program, commands, stderr)
		if len(args) == 0 {
			return fmt.Errorf("%w: no command given", ErrUsage)
		}
		return nil
	}
	// The longest matching name wins, so "tokenizer train" beats "tokenizer".
	var best *Command
	bestWords := 0
	for i := range commands {
		words := strings.Fields(commands[i].Name)
		if len(words) <= len(args) && len(words) > bestWords && equal(words, args[:len(words)]) {
			best, bestWords = &commands[i], len(words)
		}
	}
	if best == nil {
		usage(program, commands, stderr)
		return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
	}
	fs := flag.NewFlagSet(program+" "+best.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	err := best.Run(ctx, fs, args[bestWords:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func usage(program string, commands []Command, w io.Writer) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", program)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-18s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags.\n", program)
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// errKeyOnCommandLine refuses a secret given as a flag value.
var errKeyOnCommandLine = errors.New("a key on the command line is readable by every local user (ps, /proc); set it in the environment or in a file given to --api-key-file")

// APIKey registers --api-key-file on fs, and --api-key only to refuse it
// with the reason. The returned function reads the key: from the file when
// one is given, else from the environment variable env.
func APIKey(fs *flag.FlagSet, env string) func() (string, error) {
	file := fs.String("api-key-file", "", fmt.Sprintf("file holding the API key of a secured Weaviate (else env %s)", env))
	return func() (string, error) {
		if *file == "" {
			return os.Getenv(env), nil
		}
		b, err := os.ReadFile(*file)
		if err != nil {
			return "", fmt.Errorf("--api-key-file: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("--api-key-file %s is empty", *file)
		}
		return key, nil
	}
}

// Parse parses a command's flags. Its errors are usage errors (exit 2),
// and a key given on the command line is refused without echoing it.
//
// Every flag whose usage ends in "(env NAME)" takes NAME's value when that
// variable is set, and the command line overrides it: the help text is the
// one place that names a flag's variable. A value in the environment that
// the flag cannot parse is a usage error naming the variable, not a silent
// fall back to the default.
func Parse(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "api-key" {
			return fmt.Errorf("%w: --api-key: %v", ErrUsage, errKeyOnCommandLine)
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Usage)
		v, ok := os.LookupEnv(env)
		if env == "" || !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s=%q (for --%s): %v", ErrUsage, env, v, f.Name, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return nil
}

// EnvName returns the variable a flag's usage names as its fallback, in a
// closing "(env NAME)", or "" when it names none.
func EnvName(usage string) string {
	rest, ok := strings.CutSuffix(usage, ")")
	if !ok {
		return ""
	}
	i := strings.LastIndex(rest, "(env ")
	if i < 0 {
		return ""
	}
	name := rest[i+len("(env "):]
	if name == "" || strings.ContainsAny(name, " ,()") {
		return ""
	}
	return name
}
