package eval

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xling-ir/xling/qa"
)

// TestTRECFiles checks the run and qrels files against a hand-made case.
func TestTRECFiles(t *testing.T) {
	ds := &qa.Dataset{Name: "toy", Languages: []string{"de", "en"},
		Candidates: []qa.Candidate{{Lang: "en", Para: 0, Sent: 0}, {Lang: "en", Para: 0, Sent: 1}, {Lang: "de", Para: 0, Sent: 0}},
		Questions:  []qa.Question{{ID: "q1", Lang: "en", Answer: 1}, {ID: "q1", Lang: "de", Answer: 2}}}
	runs := []Run{{Question: 0, Setting: Multi, Target: "all", Ranking: []int{2, 0, 1}, Scores: []float64{0.9, 0.5, 0.1}}}
	dir := t.TempDir()
	if err := WriteTREC(filepath.Join(dir, "run"), filepath.Join(dir, "qrels"), ds, runs, "x"); err != nil {
		t.Fatal(err)
	}
	run, _ := os.ReadFile(filepath.Join(dir, "run"))
	qrels, _ := os.ReadFile(filepath.Join(dir, "qrels"))
	if string(run) != "q1/en/multi/all Q0 de/0/0 1 0.900000 x\nq1/en/multi/all Q0 en/0/0 2 0.500000 x\nq1/en/multi/all Q0 en/0/1 3 0.100000 x\n" {
		t.Errorf("run file:\n%s", run)
	}
	if string(qrels) != "q1/en/multi/all 0 de/0/0 1\nq1/en/multi/all 0 en/0/1 1\n" {
		t.Errorf("qrels file:\n%s", qrels)
	}
	// AP of that ranking: relevant at ranks 1 and 3 → (1 + 2/3) / 2.
	rep := Score(ds, runs, Dense, 100)
	if math.Abs(rep.Multi.MAP-(1+2.0/3)/2) > 1e-12 || rep.LanguageBias != 2 {
		t.Errorf("multi mAP %g, bias %g", rep.Multi.MAP, rep.LanguageBias)
	}
	if !strings.Contains(Markdown([]*Report{rep}), "| toy | dense |") {
		t.Error("markdown table lacks the row")
	}
}
