package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestBenchServeAgainstT2V runs the serving comparison briefly: the Python
// reference server starts, gives xling's vectors for the same texts, and
// both sides answer every level, questions and sentences; the last line is
// the ratio.
func TestBenchServeAgainstT2V(t *testing.T) {
	stdout, stderr, err := xling(t, "", "bench", "serve", "--against", "t2v", "--size", "tiny", "--duration", "300ms", "--concurrency", "1,4")
	if err != nil {
		t.Fatalf("xling bench serve --against t2v: %v\n%s\n%s", err, stdout, stderr)
	}
	t.Log(stdout)
	same := regexp.MustCompile(`same vectors on both sides: max \|xling - t2v\| = (\S+)`).FindStringSubmatch(stdout)
	if same == nil {
		t.Fatalf("no vector check in the output")
	}
	for _, kind := range []string{"questions", "sentences"} {
		for _, c := range []string{"c=1 ", "c=4 "} {
			if !strings.Contains(stdout, kind+" "+c) {
				t.Errorf("no summary line for %s %s", kind, c)
			}
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	last := lines[len(lines)-1]
	r, err := strconv.ParseFloat(strings.TrimPrefix(last, "ratio "), 64)
	if !strings.HasPrefix(last, "ratio ") || err != nil || r <= 0 {
		t.Errorf("last line %q is not a positive ratio", last)
	}
}

// TestBenchTrainParallel runs `bench train --nproc 2` briefly: one process
// on 2 threads, then 2 ranks of a c10d group on 1 thread each, on the same
// global batch; the gradients they exchange are the model's size.
func TestBenchTrainParallel(t *testing.T) {
	stdout, stderr, err := xling(t, "", "bench", "train", "--nproc", "2", "--arch", "transformer", "--size", "tiny", "--batch", "8", "--seq", "16", "--time", "600ms")
	if err != nil {
		t.Fatalf("xling bench train --nproc 2: %v\n%s\n%s", err, stdout, stderr)
	}
	t.Log(stdout)
	m := regexp.MustCompile(`2 processes x 1 thread\(s\): +(\S+) pairs/s; collectives (\S+)% of a step, (\S+) (KiB|MiB) per rank per step`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no line for the 2 processes")
	}
	if share, _ := strconv.ParseFloat(m[2], 64); share <= 0 || share >= 100 {
		t.Errorf("collectives take %s%% of a step", m[2])
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	last := lines[len(lines)-1]
	if r, err := strconv.ParseFloat(strings.TrimPrefix(last, "ratio "), 64); !strings.HasPrefix(last, "ratio ") || err != nil || r <= 0 {
		t.Errorf("last line %q is not a positive ratio", last)
	}
}
