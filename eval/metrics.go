// Package eval computes retrieval metrics over rankings: average precision
// over all relevant candidates (LAReQA's mAP), reciprocal rank, nDCG and
// recall at a depth, with trec_eval's definitions.
package eval

import (
	"math"
	"sort"
)

// Rank orders candidate indices by descending score; ties go to the lower
// index, so that a ranking is reproducible.
func Rank(scores []float32) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx
}

// AveragePrecision is the mean, over every relevant candidate, of the
// precision at its rank; relevant candidates missing from the ranking count
// as precision 0. It is 0 when nothing is relevant.
func AveragePrecision(ranking []int, relevant map[int]bool) float64 {
	if len(relevant) == 0 {
		return 0
	}
	hits, sum := 0, 0.0
	for i, c := range ranking {
		if relevant[c] {
			hits++
			sum += float64(hits) / float64(i+1)
		}
	}
	return sum / float64(len(relevant))
}

// ReciprocalRank is 1/rank of the first relevant candidate within depth k,
// or 0.
func ReciprocalRank(ranking []int, relevant map[int]bool, k int) float64 {
	for i, c := range ranking {
		if i >= k {
			break
		}
		if relevant[c] {
			return 1 / float64(i+1)
		}
	}
	return 0
}

// Recall is the share of relevant candidates ranked within depth k.
func Recall(ranking []int, relevant map[int]bool, k int) float64 {
	if len(relevant) == 0 {
		return 0
	}
	hits := 0
	for i, c := range ranking {
		if i >= k {
			break
		}
		if relevant[c] {
			hits++
		}
	}
	return float64(hits) / float64(len(relevant))
}

// NDCG is binary-relevance nDCG at depth k with log2 discounts, as
// trec_eval's ndcg_cut.
func NDCG(ranking []int, relevant map[int]bool, k int) float64 {
	if len(relevant) == 0 {
		return 0
	}
	dcg := 0.0
	for i, c := range ranking {
		if i >= k {
			break
		}
		if relevant[c] {
			dcg += 1 / math.Log2(float64(i+2))
		}
	}
	ideal := 0.0
	for i := 0; i < min(k, len(relevant)); i++ {
		ideal += 1 / math.Log2(float64(i+2))
	}
	return dcg / ideal
}

// The metrics again, from the ranks (1-based, ascending) at which a
// ranking holds its relevant candidates, of which there are n: what Score
// keeps of a whole-pool ranking. Each sums in the order its twin above
// does, so the two agree to the last bit.

func averagePrecision(ranks []int, n int) float64 {
	if n == 0 {
		return 0
	}
	sum := 0.0
	for k, r := range ranks {
		sum += float64(k+1) / float64(r)
	}
	return sum / float64(n)
}

func reciprocalRank(ranks []int, k int) float64 {
	if len(ranks) == 0 || ranks[0] > k {
		return 0
	}
	return 1 / float64(ranks[0])
}

func recall(ranks []int, n, k int) float64 {
	if n == 0 {
		return 0
	}
	hits := 0
	for _, r := range ranks {
		if r <= k {
			hits++
		}
	}
	return float64(hits) / float64(n)
}

func ndcg(ranks []int, n, k int) float64 {
	if n == 0 {
		return 0
	}
	dcg := 0.0
	for _, r := range ranks {
		if r <= k {
			dcg += 1 / math.Log2(float64(r+1))
		}
	}
	ideal := 0.0
	for i := 0; i < min(k, n); i++ {
		ideal += 1 / math.Log2(float64(i+2))
	}
	return dcg / ideal
}
