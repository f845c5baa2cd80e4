package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
)

// Mode is how a batch's pairs are drawn.
type Mode string

// Batch modes.
const (
	ModeMono   Mode = "mono"   // LAReQA's X-X-mono: every batch one language
	ModeXX     Mode = "x-x"    // mixed languages, each pair same-language
	ModeCross  Mode = "cross"  // X-Y: each pair's query and passage in different languages
	ModeHybrid Mode = "hybrid" // monolingual with probability alpha, else cross-lingual
)

// Pair is one training example of a batch.
type Pair struct {
	Query, Passage, Negative string
	QueryLang, PassageLang   string
	Group                    string
}

// Sampler draws batches of pairs whose groups are all distinct: the
// translations of a positive are never used as its negatives. It is
// deterministic for a seed, and its state can be saved and restored.
type Sampler struct {
	mode   Mode
	alpha  float64
	size   int
	groups []group          // groups with their items by language
	byLang map[string][]int // language -> groups that have it
	langs  []string
	multi  []int // groups with two or more languages
	pcg    *rand.PCG
	rng    *rand.Rand
	// Mono counts the monolingual batches drawn (for hybrid's share).
	Mono, Batches int
}

type group struct {
	id    string
	items map[string]Item
	langs []string
}

// SamplerConfig configures a Sampler.
type SamplerConfig struct {
	Mode      Mode
	Alpha     float64 // hybrid: probability of a monolingual batch; <0 means "size"
	BatchSize int
	Seed      uint64
}

// AlphaFromSize is the share of monolingual pairs among all the pairs the
// items allow: the abstract's "sampled based on dataset size".
func AlphaFromSize(items []Item) float64 {
	perGroup := map[string]int{}
	for _, it := range items {
		perGroup[it.Group]++
	}
	var mono, cross float64
	for _, n := range perGroup {
		mono += float64(n)
		cross += float64(n * (n - 1))
	}
	if mono+cross == 0 {
		return 0
	}
	return mono / (mono + cross)
}

// NewSampler indexes items for a batch mode.
func NewSampler(items []Item, cfg SamplerConfig) (*Sampler, error) {
	if len(items) == 0 {
		return nil, errors.New("sampler: no training pairs")
	}
	if cfg.BatchSize < 2 {
		return nil, fmt.Errorf("sampler: batch size %d leaves no in-batch negatives", cfg.BatchSize)
	}
	s := &Sampler{mode: cfg.Mode, alpha: cfg.Alpha, size: cfg.BatchSize, byLang: map[string][]int{}}
	idx := map[string]int{}
	for _, it := range items {
		gi, ok := idx[it.Group]
		if !ok {
			gi = len(s.groups)
			idx[it.Group] = gi
			s.groups = append(s.groups, group{id: it.Group, items: map[string]Item{}})
		}
		if _, dup := s.groups[gi].items[it.Lang]; !dup {
			s.groups[gi].items[it.Lang] = it
			s.groups[gi].langs = append(s.groups[gi].langs, it.Lang)
		}
	}
	for gi := range s.groups {
		g := &s.groups[gi]
		sort.Strings(g.langs)
		for _, l := range g.langs {
			s.byLang[l] = append(s.byLang[l], gi)
		}
		if len(g.langs) >= 2 {
			s.multi = append(s.multi, gi)
		}
	}
	for l := range s.byLang {
		s.langs = append(s.langs, l)
	}
	sort.Strings(s.langs)
	switch cfg.Mode {
	case ModeMono, ModeXX:
		if len(s.groups) < cfg.BatchSize {
			return nil, fmt.Errorf("sampler: %d groups cannot fill a batch of %d distinct groups", len(s.groups), cfg.BatchSize)
		}
	case ModeCross, ModeHybrid:
		if len(s.multi) == 0 {
			return nil, fmt.Errorf("sampler: mode %s needs questions whose ids are shared by two or more languages; these %d groups have one language each", cfg.Mode, len(s.groups))
		}
		if len(s.multi) < cfg.BatchSize {
			return nil, fmt.Errorf("sampler: %d multilingual groups cannot fill a cross-lingual batch of %d", len(s.multi), cfg.BatchSize)
		}
		if cfg.Mode == ModeHybrid && (cfg.Alpha > 1 || cfg.Alpha < 0) {
			return nil, fmt.Errorf("sampler: alpha %g is outside [0, 1]", cfg.Alpha)
		}
	default:
		return nil, fmt.Errorf("sampler: unknown batch mode %q (want %s, %s, %s or %s)", cfg.Mode, ModeMono, ModeXX, ModeCross, ModeHybrid)
	}
	s.pcg = rand.NewPCG(cfg.Seed, 0x73616d706c6572)
	s.rng = rand.New(s.pcg)
	return s, nil
}

// Languages lists the languages the sampler draws from.
func (s *Sampler) Languages() []string { return s.langs }

// Next draws one batch.
func (s *Sampler) Next() []Pair {
	s.Batches++
	switch s.mode {
	case ModeMono:
		s.Mono++
		return s.mono()
	case ModeXX:
		return s.xx()
	case ModeCross:
		return s.cross()
	}
	if s.rng.Float64() < s.alpha {
		s.Mono++
		return s.mono()
	}
	return s.cross()
}

// distinct draws n distinct entries of pool.
func (s *Sampler) distinct(pool []int, n int) []int {
	n = min(n, len(pool))
	picked := make(map[int]bool, n)
	out := make([]int, 0, n)
	for len(out) < n {
		g := pool[s.rng.IntN(len(pool))]
		if !picked[g] {
			picked[g] = true
			out = append(out, g)
		}
	}
	return out
}

func pairOf(q, p Item, group string) Pair {
	return Pair{Query: q.Query, Passage: p.Passage, Negative: p.Negative, QueryLang: q.Lang, PassageLang: p.Lang, Group: group}
}

func (s *Sampler) mono() []Pair {
	// A language drawn uniformly among those that can fill a batch.
	var ok []string
	for _, l := range s.langs {
		if len(s.byLang[l]) >= s.size {
			ok = append(ok, l)
		}
	}
	if len(ok) == 0 {
		ok = s.langs // small languages: a smaller batch
	}
	lang := ok[s.rng.IntN(len(ok))]
	var out []Pair
	for _, gi := range s.distinct(s.byLang[lang], s.size) {
		it := s.groups[gi].items[lang]
		out = append(out, pairOf(it, it, s.groups[gi].id))
	}
	return out
}

func (s *Sampler) xx() []Pair {
	all := make([]int, len(s.groups))
	for i := range all {
		all[i] = i
	}
	var out []Pair
	for _, gi := range s.distinct(all, s.size) {
		g := s.groups[gi]
		it := g.items[g.langs[s.rng.IntN(len(g.langs))]]
		out = append(out, pairOf(it, it, g.id))
	}
	return out
}

func (s *Sampler) cross() []Pair {
	var out []Pair
	for _, gi := range s.distinct(s.multi, s.size) {
		g := s.groups[gi]
		x := s.rng.IntN(len(g.langs))
		y := s.rng.IntN(len(g.langs) - 1)
		if y >= x {
			y++
		}
		out = append(out, pairOf(g.items[g.langs[x]], g.items[g.langs[y]], g.id))
	}
	return out
}

// samplerState is what a checkpoint keeps of a Sampler.
type samplerState struct {
	PCG     []byte `json:"pcg"`
	Mono    int    `json:"mono"`
	Batches int    `json:"batches"`
}

// MarshalJSON saves the generator's state and counts.
func (s *Sampler) MarshalJSON() ([]byte, error) {
	b, err := s.pcg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return json.Marshal(samplerState{PCG: b, Mono: s.Mono, Batches: s.Batches})
}

// UnmarshalJSON restores what MarshalJSON saved.
func (s *Sampler) UnmarshalJSON(b []byte) error {
	var st samplerState
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	if err := s.pcg.UnmarshalBinary(st.PCG); err != nil {
		return fmt.Errorf("sampler state: %w", err)
	}
	s.Mono, s.Batches = st.Mono, st.Batches
	return nil
}

// ParseAlpha reads --alpha: a probability, or "size".
func ParseAlpha(s string, items []Item) (float64, error) {
	if s == "size" {
		return AlphaFromSize(items), nil
	}
	a, err := strconv.ParseFloat(s, 64)
	if err != nil || a < 0 || a > 1 {
		return 0, fmt.Errorf("alpha %q: want a probability in [0, 1] or \"size\"", s)
	}
	return a, nil
}
