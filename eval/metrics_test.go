package eval

import (
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

// Hand-computed: relevant {1, 4} in ranking 3,1,0,4,2 sit at ranks 2 and 4.
func TestHandComputed(t *testing.T) {
	ranking := []int{3, 1, 0, 4, 2}
	rel := map[int]bool{1: true, 4: true}
	if ap := AveragePrecision(ranking, rel); !near(ap, (1.0/2+2.0/4)/2) {
		t.Errorf("AP %g", ap)
	}
	if rr := ReciprocalRank(ranking, rel, 10); !near(rr, 0.5) {
		t.Errorf("RR %g", rr)
	}
	if rr := ReciprocalRank(ranking, rel, 1); rr != 0 {
		t.Errorf("RR@1 %g", rr)
	}
	if r := Recall(ranking, rel, 3); !near(r, 0.5) {
		t.Errorf("recall@3 %g", r)
	}
	want := (1/math.Log2(3) + 1/math.Log2(5)) / (1 + 1/math.Log2(3))
	if n := NDCG(ranking, rel, 10); !near(n, want) {
		t.Errorf("nDCG@10 %g, want %g", n, want)
	}
	// A relevant candidate missing from a cut ranking counts as a miss.
	if ap := AveragePrecision([]int{1, 3}, rel); !near(ap, 0.5) {
		t.Errorf("AP with a missing relevant %g", ap)
	}
	// Nothing relevant: every metric is 0.
	for name, v := range map[string]float64{"AP": AveragePrecision(ranking, nil), "RR": ReciprocalRank(ranking, nil, 10), "R": Recall(ranking, nil, 10), "nDCG": NDCG(ranking, nil, 10)} {
		if v != 0 {
			t.Errorf("%s with nothing relevant = %g", name, v)
		}
	}
}

func TestRankTies(t *testing.T) {
	if got := Rank([]float32{0.5, 0.9, 0.5, 0.1}); !reflect.DeepEqual(got, []int{1, 0, 2, 3}) {
		t.Fatalf("Rank %v", got)
	}
}

// TestRankMetricsMatch: the metrics from the ranks of the relevant
// candidates (what a whole-pool evaluation keeps) equal, to the last bit,
// the metrics from the rankings themselves.
func TestRankMetricsMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 500 {
		n := 1 + rng.IntN(300)
		ranking := rng.Perm(n)[:rng.IntN(n)+1] // a ranking may miss some
		relevant := map[int]bool{}
		for range 1 + rng.IntN(12) {
			relevant[rng.IntN(n)] = true
		}
		ranks := slices.Sorted(maps.Values(foundRanks(ranking, relevant)))
		for _, k := range []int{1, 10, 100} {
			if a, b := ReciprocalRank(ranking, relevant, k), reciprocalRank(ranks, k); a != b {
				t.Fatalf("trial %d: RR@%d %v from the ranking, %v from ranks", trial, k, a, b)
			}
			if a, b := NDCG(ranking, relevant, k), ndcg(ranks, len(relevant), k); a != b {
				t.Fatalf("trial %d: nDCG@%d %v from the ranking, %v from ranks", trial, k, a, b)
			}
			if a, b := Recall(ranking, relevant, k), recall(ranks, len(relevant), k); a != b {
				t.Fatalf("trial %d: recall@%d %v from the ranking, %v from ranks", trial, k, a, b)
			}
		}
		if a, b := AveragePrecision(ranking, relevant), averagePrecision(ranks, len(relevant)); a != b {
			t.Fatalf("trial %d: AP %v from the ranking, %v from ranks", trial, a, b)
		}
	}
}
