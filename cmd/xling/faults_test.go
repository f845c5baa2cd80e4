package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
)

// The fault-injection suite runs xling as a user does (real processes,
// default flags but for the run's size) and kills it with SIGKILL.

// prepared writes train.jsonl/valid.jsonl for two XQuAD-R languages once
// per test binary.
func prepared(t *testing.T) string {
	t.Helper()
	preparedOnce.Do(func() {
		dir, _ := os.MkdirTemp("", "xling-faults-")
		_, stderr, err := xling(t, "", "prepare", "--out", dir, "--langs", "de,es", filepath.Join(sharedtest.Dir(t), "xquad-r"))
		if err != nil {
			preparedErr = fmt.Errorf("xling prepare: %v\n%s", err, stderr)
		}
		preparedDir = dir
	})
	if preparedErr != nil {
		t.Fatal(preparedErr)
	}
	return preparedDir
}

var (
	preparedOnce sync.Once
	preparedDir  string
	preparedErr  error
)

var progressStep = regexp.MustCompile(`msg=training (?:rank=\d+ )?step=(\d+) `)

// runKilledAt runs xling and sends SIGKILL once it reports training step
// killAt or later. It returns whether the process was killed (it may have
// finished first) and its stderr.
func runKilledAt(t *testing.T, killAt int, args ...string) (killed bool, stderr string) {
	t.Helper()
	return runKilledWhen(t, func(line string) bool {
		m := progressStep.FindStringSubmatch(line)
		n := -1
		if m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		return n >= killAt
	}, args...)
}

// runKilledOn sends SIGKILL at the first log line holding marker.
func runKilledOn(t *testing.T, marker string, args ...string) (killed bool, stderr string) {
	t.Helper()
	return runKilledWhen(t, func(line string) bool { return strings.Contains(line, marker) }, args...)
}

// runKilledWhen runs xling and sends SIGKILL at the first stderr line for
// which kill is true.
func runKilledWhen(t *testing.T, kill func(line string) bool, args ...string) (killed bool, stderr string) {
	t.Helper()
	stderr, killed, err := runActing(t, args, kill, func(cmd *exec.Cmd) { cmd.Process.Signal(syscall.SIGKILL) })
	if !killed && err != nil {
		t.Fatalf("xling %v: %v\n%s", args, err, stderr)
	}
	return killed, stderr
}

// runActing runs xling with args and calls act once, at the first line of
// its stderr (split at newlines and carriage returns, which end progress
// lines) for which when is true. It returns the stderr, whether act ran,
// and how xling exited.
func runActing(t *testing.T, args []string, when func(line string) bool, act func(*exec.Cmd)) (stderr string, acted bool, err error) {
	t.Helper()
	xling(t, "", "version") // builds the binary
	cmd := exec.Command(libtorchBuild.path, args...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	sc := bufio.NewScanner(pipe)
	sc.Split(splitLinesOrCR)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if !acted && when(sc.Text()) {
			act(cmd)
			acted = true
		}
	}
	err = cmd.Wait()
	return log.String(), acted, err
}

func splitLinesOrCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// jsonLines reads a JSON-lines log as maps.
func jsonLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		delete(m, "pairs_per_second") // timing, not training
		out = append(out, m)
	}
	return out
}

// sameRun checks that a run directory ended exactly as the reference:
// byte-identical models, and logs with every step once and the same values.
func sameRun(t *testing.T, ref, got string) {
	t.Helper()
	for _, f := range []string{"model/model.safetensors", "model/tokenizer.json", "model/config.json", "best/model.safetensors"} {
		a, err := os.ReadFile(filepath.Join(ref, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(got, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from the uninterrupted run's", f)
		}
	}
	for _, f := range []string{"train.jsonl", "eval.jsonl"} {
		want, have := jsonLines(t, filepath.Join(ref, f)), jsonLines(t, filepath.Join(got, f))
		var steps []float64
		for _, m := range have {
			steps = append(steps, m["step"].(float64))
		}
		if !slices.IsSorted(steps) || len(slices.Compact(slices.Clone(steps))) != len(steps) {
			t.Errorf("%s repeats steps: %v", f, steps)
		}
		if len(want) != len(have) {
			t.Errorf("%s has %d lines, the uninterrupted run's %d", f, len(have), len(want))
			continue
		}
		for i := range want {
			a, _ := json.Marshal(want[i])
			b, _ := json.Marshal(have[i])
			if !bytes.Equal(a, b) {
				t.Errorf("%s line %d differs from the uninterrupted run's:\n%s\n%s", f, i+1, a, b)
				break
			}
		}
	}
}

// TestTrainSurvivesKill9 kills `xling train` at 10 pseudo-random steps,
// resuming each time with the same flags; the final models and logs equal
// an uninterrupted run's, for both architectures.
func TestTrainSurvivesKill9(t *testing.T) {
	data := prepared(t)
	for _, c := range []struct {
		arch  string
		steps int
		extra []string
	}{
		{"static", 150, nil},
		{"transformer", 60, []string{"--size", "tiny", "--lr", "1e-3"}},
	} {
		t.Run(c.arch, func(t *testing.T) {
			args := func(out string) []string {
				return append([]string{"train", "--data", data, "--out", out, "--arch", c.arch, "--steps", strconv.Itoa(c.steps),
					"--checkpoint-every", "10", "--eval-every", "25", "--log-every", "1", "--vocab-size", "2000"}, c.extra...)
			}
			ref := filepath.Join(t.TempDir(), "ref")
			if _, stderr, err := xling(t, "", args(ref)...); err != nil {
				t.Fatalf("uninterrupted run: %v\n%s", err, stderr)
			}
			got := filepath.Join(t.TempDir(), "killed")
			rng := rand.New(rand.NewPCG(uint64(c.steps), 13))
			targets := rng.Perm(c.steps - 4)[:10]
			slices.Sort(targets)
			kills := 0
			for i, at := range targets {
				a := args(got)
				if i > 0 {
					a = append(a, "--resume")
				}
				if killed, _ := runKilledAt(t, at+2, a...); killed {
					kills++
				}
			}
			if kills < 10 {
				t.Fatalf("only %d of 10 runs were killed before they finished", kills)
			}
			if _, stderr, err := xling(t, "", append(args(got), "--resume")...); err != nil {
				t.Fatalf("final resume: %v\n%s", err, stderr)
			}
			sameRun(t, ref, got)
		})
	}
}

// TestCorruptCheckpointFallsBack damages the newest checkpoint three ways;
// each time the resume detects it by checksum, says so, resumes from the
// previous one and ends as the uninterrupted run.
func TestCorruptCheckpointFallsBack(t *testing.T) {
	data := prepared(t)
	args := func(out string) []string {
		return []string{"train", "--data", data, "--out", out, "--arch", "static", "--steps", "40",
			"--checkpoint-every", "10", "--eval-every", "20", "--log-every", "1", "--vocab-size", "2000"}
	}
	ref := filepath.Join(t.TempDir(), "ref")
	if _, stderr, err := xling(t, "", args(ref)...); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, stderr)
	}
	damage := map[string]func(path string) error{
		"truncated": func(path string) error {
			info, err := os.Stat(path)
			if err != nil {
				return err
			}
			return os.Truncate(path, info.Size()-100)
		},
		"bit-flipped": func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x10
			return os.WriteFile(path, b, 0o644)
		},
		"NaN": func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			copy(b[len(b)-8:], []byte{0, 0, 0xc0, 0x7f, 0, 0, 0xc0, 0x7f}) // two float32 NaNs
			return os.WriteFile(path, b, 0o644)
		},
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			got := filepath.Join(t.TempDir(), "run")
			if killed, _ := runKilledAt(t, 33, args(got)...); !killed {
				t.Fatal("the run finished before it was killed")
			}
			if err := fn(filepath.Join(got, "checkpoints", "step-0000030", "model.safetensors")); err != nil {
				t.Fatal(err)
			}
			_, stderr, err := xling(t, "", append(args(got), "--resume")...)
			if err != nil {
				t.Fatalf("resume: %v\n%s", err, stderr)
			}
			if !strings.Contains(stderr, "checkpoint is corrupt: falling back to the previous one") || !strings.Contains(stderr, "SHA-256") ||
				!strings.Contains(stderr, "msg=resumed") || !strings.Contains(stderr, "step=20") {
				t.Fatalf("the log does not say which checkpoint was skipped and which used:\n%s", stderr)
			}
			sameRun(t, ref, got)
		})
	}
}

// TestExperimentSurvivesKill9 kills `xling experiment` (a tiny study with
// its own local Weaviate) mid-model and mid-evaluation; the resumed study's
// results and models equal an uninterrupted one's.
func TestExperimentSurvivesKill9(t *testing.T) {
	data := sharedtest.Dir(t)
	if _, err := localweaviate.FindBinary(); err != nil && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	config := filepath.Join(t.TempDir(), "tiny.json")
	os.WriteFile(config, []byte(`{"arch": "static", "size": "tiny", "vocab_size": 3000, "max_length": 64,
		"modes": ["mono", "hybrid"], "alphas": ["0.5"], "seeds": [1], "steps": 60, "batch_size": 16, "lr": 0,
		"directions": [{"train": ["xquad-r"], "eval": "mlqa-r"}], "candidate": "sentence", "depth": 100,
		"index": "flat", "baselines": ["bm25"], "max_questions": 20}`), 0o644)
	args := func(out string) []string {
		return []string{"experiment", "--config", config, "--budget", "full", "--out", out, "--data-dir", data, "--weaviate", "local"}
	}
	ref := filepath.Join(t.TempDir(), "ref")
	if _, stderr, err := xling(t, "", args(ref)...); err != nil {
		t.Fatalf("uninterrupted study: %v\n%s", err, stderr)
	}
	got := filepath.Join(t.TempDir(), "killed")
	// Mid-model: the first model's training.
	if killed, log := runKilledAt(t, 30, args(got)...); !killed {
		t.Fatalf("the study was not killed mid-model:\n%s", log)
	}
	// Mid-evaluation: once a model is being evaluated in Weaviate.
	if killed, log := runKilledOn(t, `msg="evaluating in weaviate"`, args(got)...); !killed {
		t.Fatalf("the study was not killed mid-evaluation:\n%s", log)
	}
	if _, stderr, err := xling(t, "", args(got)...); err != nil {
		t.Fatalf("resumed study: %v\n%s", err, stderr)
	}
	for _, f := range []string{"runs/xquad-r_to_mlqa-r/mono-seed1/model/model.safetensors", "runs/xquad-r_to_mlqa-r/hybrid-seed1/model/model.safetensors"} {
		a, _ := os.ReadFile(filepath.Join(ref, f))
		b, err := os.ReadFile(filepath.Join(got, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the uninterrupted study's (%v)", f, err)
		}
	}
	results := func(dir string) string {
		b, err := os.ReadFile(filepath.Join(dir, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Directions []struct {
				Results json.RawMessage `json:"results"`
				Summary json.RawMessage `json:"summary"`
			} `json:"directions"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(rep.Directions)
		return string(out)
	}
	if a, b := results(ref), results(got); a != b {
		t.Fatalf("report.json results differ from the uninterrupted study's:\n%.2000s\n%.2000s", a, b)
	}
}
