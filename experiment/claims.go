package experiment

import (
	"fmt"
	"math"
	"strings"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/trainer"
)

// Claim is one of the hybrid-batch paper's claims, tested on one direction
// by paired differences: hybrid minus the other model, seed by seed (the
// same seed draws the same initialisation and data order).
type Claim struct {
	Claim   string  `json:"claim"`
	Setting string  `json:"setting"` // mono, cross, multi, or bias
	Hybrid  Stat    `json:"hybrid"`
	Other   Stat    `json:"other"`
	Versus  string  `json:"versus"`
	Diff    Stat    `json:"diff"`  // hybrid - other, per seed
	Noise   float64 `json:"noise"` // twice the differences' spread: what seeds alone move
	Seeds   int     `json:"seeds"`
	Verdict string  `json:"verdict"`
}

// claims tests the paper's three claims on d: hybrid >= monolingual
// batches in the mono and multi settings, hybrid ≈ cross-lingual batches
// in the cross setting, and hybrid's language bias below monolingual's.
func (r *Report) claims(d DirectionResult) []Claim {
	hybrid := r.Config.searchModel()
	per := func(method string, of func(*eval.Report) float64) map[uint64]float64 {
		out := map[uint64]float64{}
		for _, res := range d.Results {
			if res.Method == method {
				out[res.Seed] = of(res.Report)
			}
		}
		return out
	}
	mapOf := map[string]func(*eval.Report) float64{
		"mono":  func(r *eval.Report) float64 { return r.Mono.MAP },
		"cross": func(r *eval.Report) float64 { return r.Cross.MAP },
		"multi": func(r *eval.Report) float64 { return r.Multi.MAP },
		"bias":  func(r *eval.Report) float64 { return r.LanguageBias },
	}
	var out []Claim
	add := func(claim, setting, versus string, judge func(diff, noise, other float64) string) {
		h, o := per(hybrid, mapOf[setting]), per(versus, mapOf[setting])
		var hs, others, ds []float64
		for seed, hv := range h {
			if ov, ok := o[seed]; ok {
				hs, others, ds = append(hs, hv), append(others, ov), append(ds, hv-ov)
			}
		}
		if len(ds) == 0 {
			return
		}
		c := Claim{Claim: claim, Setting: setting, Hybrid: stat(hs), Other: stat(others), Versus: versus, Diff: stat(ds), Seeds: len(ds)}
		c.Noise = 2 * c.Diff.Std
		if len(ds) < 2 {
			c.Verdict = "one seed: no verdict"
		} else {
			c.Verdict = judge(c.Diff.Mean, c.Noise, c.Other.Mean)
		}
		out = append(out, c)
	}
	atLeast := func(diff, noise, _ float64) string {
		switch {
		case diff > noise:
			return "holds: hybrid is better beyond seed noise"
		case diff >= -noise:
			return "holds within seed noise (a tie)"
		}
		return "does not hold: hybrid is worse beyond seed noise"
	}
	mono, cross := string(trainer.ModeMono), string(trainer.ModeCross)
	add("hybrid ≥ monolingual batches", "mono", mono, atLeast)
	add("hybrid ≥ monolingual batches", "multi", mono, atLeast)
	add("hybrid ≈ cross-lingual batches", "cross", cross, func(diff, noise, other float64) string {
		// Within the seeds' spread, or 5% of cross's mAP when seeds agree
		// more closely than that.
		if tol := math.Max(noise, 0.05*other); math.Abs(diff) <= tol {
			return fmt.Sprintf("holds: within %.4f", tol)
		}
		if diff > 0 {
			return "does not hold: hybrid is better"
		}
		return "does not hold: hybrid is worse"
	})
	add("hybrid has lower language bias than monolingual batches", "bias", mono, func(diff, noise, _ float64) string {
		switch {
		case diff < -noise:
			return "holds: lower beyond seed noise"
		case diff <= noise:
			return "not shown: within seed noise"
		}
		return "does not hold: higher beyond seed noise"
	})
	return out
}

// claimsText tabulates d's claims.
func (r *Report) claimsText(d DirectionResult) string {
	if len(d.Claims) == 0 {
		return ""
	}
	var b strings.Builder
	at := eval.DepthLabel(r.Config.Depth)
	fmt.Fprintf(&b, "### The paper's three claims\n\nPaired by seed (hybrid minus the other model; ± is the standard deviation over the %d seed(s) evaluated); noise is twice the differences' spread. Settings are mAP%s, bias in ranks.\n\n", d.Claims[0].Seeds, at)
	b.WriteString("| claim | setting | hybrid | other | difference | noise | verdict |\n|---|---|---|---|---|---|---|\n")
	for _, c := range d.Claims {
		digits := 4
		if c.Setting == "bias" {
			digits = 1
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s: %s | %+.*f ± %.*f | %.*f | %s |\n", c.Claim, c.Setting, pm(c.Hybrid, digits), c.Versus, pm(c.Other, digits),
			digits, c.Diff.Mean, digits, c.Diff.Std, digits, c.Noise, c.Verdict)
	}
	return b.String() + "\n"
}
