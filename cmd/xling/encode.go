package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/vectorizer"
)

// runEncode reads one text per line on stdin and writes one JSON object
// {"text", "vector"} per line on stdout, in order.
func runEncode(ctx context.Context, fs *flag.FlagSet, args []string) error {
	model := addModelFlags(fs, "model directory")
	kind := fs.String("kind", "passage", "query or passage: picks the prefix or encoder")
	batch := fs.Int("batch", 32, "texts per forward pass (env XLING_BATCH)")
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	if *model.dir == "" {
		return fmt.Errorf("%w: --model is required", cli.ErrUsage)
	}
	k, err := vectorizer.ParseKind(*kind)
	if err != nil {
		return fmt.Errorf("%w: --kind: %v", cli.ErrUsage, err)
	}
	v, err := model.load(*batch, log)
	if err != nil {
		return err
	}
	defer v.Close()

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	var lines []string
	first := 1 // line number of lines[0]
	flush := func() error {
		vecs, err := v.Encode(ctx, lines, k)
		var bad *vectorizer.TextError
		if errors.As(err, &bad) {
			return fmt.Errorf("line %d: %w", first+bad.Index, bad.Err)
		}
		if err != nil {
			return err
		}
		for i, vec := range vecs {
			if err := enc.Encode(map[string]any{"text": lines[i], "vector": vec}); err != nil {
				return err
			}
		}
		first += len(lines)
		lines = lines[:0]
		return nil
	}
	for in.Scan() {
		lines = append(lines, in.Text())
		if len(lines) == 8*(*batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := in.Err(); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if len(lines) > 0 {
		return flush()
	}
	return nil
}
