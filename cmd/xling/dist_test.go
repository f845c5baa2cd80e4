package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xling-ir/xling/internal/safetensors"
)

// Data-parallel training on libtorch's c10d, run as users run it: real
// processes started by `xling train --nproc`, or by hand with torchrun's
// variables, rendezvousing on loopback.

// maxDiff is the largest absolute difference between two models' tensors;
// it fails on a tensor present in one only.
func maxDiff(t *testing.T, a, b string) float64 {
	t.Helper()
	fa, err := safetensors.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := safetensors.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(fa.Tensors) != len(fb.Tensors) {
		t.Fatalf("%s holds %d tensors, %s %d", a, len(fa.Tensors), b, len(fb.Tensors))
	}
	worst := 0.0
	for name, ta := range fa.Tensors {
		tb, ok := fb.Tensors[name]
		if !ok {
			t.Fatalf("%s lacks %s", b, name)
		}
		va, err := ta.Float32()
		if err != nil {
			t.Fatal(err)
		}
		vb, err := tb.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if len(va) != len(vb) {
			t.Fatalf("%s: %d values against %d", name, len(va), len(vb))
		}
		for i := range va {
			worst = math.Max(worst, math.Abs(float64(va[i])-float64(vb[i])))
		}
	}
	return worst
}

// staticDistArgs is a small static run that every test here trains:
// hybrid batches with hard negatives, so that the shares of a batch hold
// different numbers of texts.
func staticDistArgs(data, out string, steps int) []string {
	return []string{"train", "--data", data, "--out", out, "--arch", "static", "--size", "tiny", "--vocab-size", "3000",
		"--batch-mode", "hybrid", "--hard-negatives", "--batch-size", "24", "--steps", strconv.Itoa(steps), "--checkpoint-every", "4",
		"--eval-every", "0", "--log-every", "1", "--seed", "5", "--dist-timeout", "20s"}
}

func train(t *testing.T, args ...string) string {
	t.Helper()
	_, stderr, err := xling(t, "", args...)
	if err != nil {
		t.Fatalf("xling %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stderr
}

// TestDataParallelIsExact: 2 processes sharing a global batch of B end with
// the parameters of 1 process training on batches of B, for both encoders.
func TestDataParallelIsExact(t *testing.T) {
	data := prepared(t)
	tmp := t.TempDir()
	one, two := filepath.Join(tmp, "static-1"), filepath.Join(tmp, "static-2")
	train(t, staticDistArgs(data, one, 12)...)
	log := train(t, append(staticDistArgs(data, two, 12), "--nproc", "2")...)
	for _, want := range []string{"[rank 0] ", "[rank 1] ", "world_size=2"} {
		if !strings.Contains(log, want) {
			t.Errorf("the 2-process run's log lacks %q:\n%s", want, log)
		}
	}
	model := "model/model.safetensors"
	moved := maxDiff(t, filepath.Join(one, "init", "model.safetensors"), filepath.Join(one, model))
	diff := maxDiff(t, filepath.Join(one, model), filepath.Join(two, model))
	t.Logf("static, 12 steps of 24 pairs: 1 process against 2, max |diff| %.3g (the weights moved by up to %.3g)", diff, moved)
	if moved < 1e-2 || diff > 1e-5 {
		t.Errorf("static: 2 processes differ from 1 by %g (limit 1e-5); training moved the weights by %g", diff, moved)
	}
	if a, b := readFile(t, filepath.Join(one, "model/tokenizer.json")), readFile(t, filepath.Join(two, "model/tokenizer.json")); !bytes.Equal(a, b) {
		t.Error("the 2-process run's tokenizer differs from the single process's")
	}

	// The transformer starts from a tiny model without dropout, whose
	// masks would differ between a batch and its two shares.
	initRun := filepath.Join(tmp, "init")
	train(t, "train", "--data", data, "--out", initRun, "--arch", "transformer", "--size", "tiny", "--vocab-size", "3000", "--steps", "1", "--eval-every", "0")
	start := filepath.Join(tmp, "start")
	if err := os.CopyFS(start, os.DirFS(filepath.Join(initRun, "model"))); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(start, "config.json")), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["hidden_dropout_prob"], cfg["attention_probs_dropout_prob"] = 0.0, 0.0
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(start, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tr := func(out string, extra ...string) {
		train(t, append([]string{"train", "--data", data, "--out", out, "--arch", "transformer", "--init", start, "--lr", "1e-3",
			"--batch-size", "16", "--steps", "4", "--eval-every", "0", "--seed", "2", "--dist-timeout", "60s"}, extra...)...)
	}
	tOne, tTwo := filepath.Join(tmp, "transformer-1"), filepath.Join(tmp, "transformer-2")
	tr(tOne)
	tr(tTwo, "--nproc", "2")
	moved = maxDiff(t, filepath.Join(start, "model.safetensors"), filepath.Join(tOne, model))
	diff = maxDiff(t, filepath.Join(tOne, model), filepath.Join(tTwo, model))
	t.Logf("transformer (tiny), 4 steps of 16 pairs: 1 process against 2, max |diff| %.3g (the weights moved by up to %.3g)", diff, moved)
	if moved < 1e-3 || diff > 1e-4 {
		t.Errorf("transformer: 2 processes differ from 1 by %g (limit 1e-4); training moved the weights by %g", diff, moved)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// worker is one rank started by hand, as a PyTorchJob's pod is.
type worker struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	lines  chan string
	done   chan error
}

func startWorkers(t *testing.T, n int, args ...string) []*worker {
	t.Helper()
	xling(t, "", "version") // builds the binary
	port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	ws := make([]*worker, n)
	for r := range ws {
		w := &worker{cmd: exec.Command(libtorchBuild.path, args...), lines: make(chan string, 1024), done: make(chan error, 1)}
		w.cmd.Env = append(os.Environ(), "WORLD_SIZE="+strconv.Itoa(n), "RANK="+strconv.Itoa(r), "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+port)
		pipe, err := w.cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(pipe)
			for sc.Scan() {
				w.stderr.WriteString(sc.Text() + "\n")
				select {
				case w.lines <- sc.Text():
				default:
				}
			}
			close(w.lines)
			w.done <- w.cmd.Wait()
		}()
		t.Cleanup(func() { w.cmd.Process.Kill() })
		ws[r] = w
	}
	return ws
}

// waitStep reads w's log until it reports training step n or later.
func (w *worker) waitStep(t *testing.T, n int) {
	t.Helper()
	for line := range w.lines {
		if m := progressStep.FindStringSubmatch(line); m != nil && mustAtoi(m[1]) >= n {
			return
		}
	}
	t.Fatalf("the worker ended before step %d:\n%s", n, w.stderr.String())
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// exit waits for w to end, at most within.
func (w *worker) exit(t *testing.T, within time.Duration) error {
	t.Helper()
	for range w.lines { // drain, so that the reader reaches Wait
	}
	select {
	case err := <-w.done:
		return err
	case <-time.After(within):
		t.Fatalf("the worker did not exit within %s:\n%s", within, w.stderr.String())
	}
	return nil
}

// TestDataParallelFaults: a killed or hung rank makes the others exit
// non-zero, naming it, within the timeout; the run resumes, with the same
// or another world size, to the parameters of the uninterrupted run.
func TestDataParallelFaults(t *testing.T) {
	// Long enough that step 6, where a rank is killed, is far from the end.
	const faultSteps = 60
	data := prepared(t)
	tmp := t.TempDir()
	ref := filepath.Join(tmp, "uninterrupted")
	train(t, append(staticDistArgs(data, ref, faultSteps), "--nproc", "2")...)
	model := "model/model.safetensors"

	// Killed: rank 1 gets SIGKILL after step 6 (a checkpoint at 4).
	killed := filepath.Join(tmp, "killed")
	ws := startWorkers(t, 2, staticDistArgs(data, killed, faultSteps)...)
	ws[0].waitStep(t, 6)
	ws[1].cmd.Process.Signal(syscall.SIGKILL)
	began := time.Now()
	err := ws[0].exit(t, 30*time.Second)
	if err == nil || !strings.Contains(ws[0].stderr.String(), "rank 1 has stopped") {
		t.Fatalf("rank 0 after rank 1's death: exit %v, want non-zero naming rank 1:\n%s", err, ws[0].stderr.String())
	}
	t.Logf("rank 0 exited %s after rank 1 was killed: %s", time.Since(began).Round(time.Millisecond), lastLine(ws[0].stderr.String()))
	// Resumed with the same world size: bit for bit the uninterrupted run.
	train(t, append(staticDistArgs(data, killed, faultSteps), "--resume", "--nproc", "2")...)
	if a, b := readFile(t, filepath.Join(ref, model)), readFile(t, filepath.Join(killed, model)); !bytes.Equal(a, b) {
		t.Errorf("resumed after a killed rank, the model differs from the uninterrupted run's by %g", maxDiff(t, filepath.Join(ref, model), filepath.Join(killed, model)))
	}

	// Hung: rank 1 is stopped (SIGSTOP); rank 0's next collective times
	// out. Then resume the run alone: another world size.
	hung := filepath.Join(tmp, "hung")
	args := append(staticDistArgs(data, hung, faultSteps), "--dist-timeout", "5s")
	ws = startWorkers(t, 2, args...)
	ws[0].waitStep(t, 6)
	ws[1].cmd.Process.Signal(syscall.SIGSTOP)
	began = time.Now()
	err = ws[0].exit(t, 60*time.Second)
	if err == nil || !strings.Contains(ws[0].stderr.String(), "rank 1 has stopped") {
		t.Fatalf("rank 0 with rank 1 hung: exit %v, want non-zero naming rank 1:\n%s", err, ws[0].stderr.String())
	}
	t.Logf("rank 0 exited %s after rank 1 hung (--dist-timeout 5s): %s", time.Since(began).Round(time.Millisecond), ws[0].stderr.String()[strings.LastIndex(ws[0].stderr.String(), "xling: "):])
	ws[1].cmd.Process.Kill()
	train(t, append(staticDistArgs(data, hung, faultSteps), "--resume")...)
	if d := maxDiff(t, filepath.Join(ref, model), filepath.Join(hung, model)); d > 1e-5 {
		t.Errorf("resumed by 1 process after 2, the model differs from the uninterrupted run's by %g (limit 1e-5)", d)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
