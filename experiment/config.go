// Package experiment runs xling's study: one encoder per batch mode (mono,
// x-x, cross, hybrid) trained from the same initialisation on the same data
// with the same step budget, each evaluated zero-shot inside Weaviate on a
// dataset it never saw, beside the untrained model and Weaviate's BM25,
// over several seeds; then a report that answers how multilingual training
// compares to monolingual training.
package experiment

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/xling-ir/xling/trainer"
)

// Config is a study. The embedded default.json is the full study; a budget
// scales it (see WithBudget).
type Config struct {
	Arch      string         `json:"arch"` // static or transformer
	Size      string         `json:"size"` // tiny, small or base
	VocabSize int            `json:"vocab_size"`
	MaxLength int            `json:"max_length"`
	Modes     []trainer.Mode `json:"modes"`
	// Alphas are the hybrid mode's probabilities of a monolingual batch,
	// each "0.5"-style or "size" (the monolingual share of the pairs): one
	// hybrid model per value, named hybrid-<alpha> when there are several.
	Alphas    []string `json:"alphas"`
	Seeds     []uint64 `json:"seeds"`
	Steps     int      `json:"steps"`
	BatchSize int      `json:"batch_size"`
	LR        float64  `json:"lr"` // 0: the architecture's default
	// Directions pair training data with an evaluation dataset it does
	// not contain.
	Directions []Direction `json:"directions"`
	Candidate  string      `json:"candidate"` // sentence or sentence+context
	// Depth is 0 (eval.WholePool) to rank each setting's whole pool, the
	// published protocol, or N to cut every ranking at N (faster; the
	// report says @N).
	Depth int `json:"depth"`

	Index string `json:"index"` // flat (exact) or hnsw
	// Baselines run inside Weaviate besides the trained models: "bm25"
	// (once per evaluation dataset) and "hybrid" (Weaviate's hybrid search
	// with each hybrid-trained model's vectors).
	Baselines []string `json:"baselines"`
	// MIRACL, if set, evaluates every model on MIRACL too.
	MIRACL *MIRACLSet `json:"miracl,omitempty"`
	// MaxQuestions keeps the questions of the first N question ids of an
	// evaluation dataset (every pool stays whole); 0 keeps all.
	MaxQuestions int `json:"max_questions"`
}

// Direction is one zero-shot pairing.
type Direction struct {
	// Train names LAReQA directories under the data directory (xquad-r,
	// mlqa-r) or SQuAD-format files as FILE.json:LANG (a translated SQuAD).
	Train []string `json:"train"`
	Eval  string   `json:"eval"` // a LAReQA directory under the data directory
}

// Name is "train→eval", as the report heads a direction.
func (d Direction) Name() string { return strings.Join(d.Train, "+") + " → " + d.Eval }

// key names the direction's directories; a long training list is named by
// its hash, as a file name holds 255 bytes.
func (d Direction) key() string {
	r := strings.NewReplacer("/", "_", ":", "_", ".json", "", ",", "-")
	train := r.Replace(strings.Join(d.Train, "+"))
	if len(train) > 64 {
		sum := sha256.Sum256([]byte(strings.Join(d.Train, "\n")))
		train = fmt.Sprintf("%d-sources-%x", len(d.Train), sum[:6])
	}
	return train + "_to_" + d.Eval
}

//go:embed default.json
var defaultJSON []byte

// Default is the embedded full study.
func Default() Config {
	c, err := decode(defaultJSON)
	if err != nil {
		panic("experiment: embedded default.json: " + err.Error())
	}
	return c
}

// Load reads a config file; unknown fields are errors, so that a typo does
// not silently run another study.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load experiment config: %w", err)
	}
	c, err := decode(b)
	if err != nil {
		return Config{}, fmt.Errorf("load experiment config %s: %w", path, err)
	}
	return c, nil
}

func decode(b []byte) (Config, error) {
	c := Config{}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate reports the first setting that cannot run.
func (c Config) Validate() error {
	if c.Arch != trainer.ArchStatic && c.Arch != trainer.ArchTransformer {
		return fmt.Errorf("arch %q (want static or transformer)", c.Arch)
	}
	if len(c.Modes) == 0 || len(c.Seeds) == 0 || len(c.Directions) == 0 {
		return fmt.Errorf("a study needs modes, seeds and directions")
	}
	for _, m := range c.Modes {
		switch m {
		case trainer.ModeMono, trainer.ModeXX, trainer.ModeCross, trainer.ModeHybrid:
		default:
			return fmt.Errorf("mode %q (want mono, x-x, cross or hybrid)", m)
		}
	}
	if slices.Contains(c.Modes, trainer.ModeHybrid) && len(c.Alphas) == 0 {
		return fmt.Errorf("mode hybrid needs alphas (e.g. [\"0.5\"])")
	}
	for _, a := range c.Alphas {
		if _, err := trainer.ParseAlpha(a, nil); err != nil {
			return err
		}
	}
	if c.Steps <= 0 || c.BatchSize < 2 || c.Depth < 0 {
		return fmt.Errorf("steps and batch_size (>= 2) must be positive, and depth 0 (the whole pool) or positive")
	}
	for _, d := range c.Directions {
		if len(d.Train) == 0 || d.Eval == "" {
			return fmt.Errorf("direction %v needs train and eval", d)
		}
		// Zero-shot by construction: never evaluate on training data.
		for _, t := range d.Train {
			if name, _, _ := strings.Cut(t, ":"); name == d.Eval || strings.TrimSuffix(name, "/") == d.Eval {
				return fmt.Errorf("direction %s evaluates on its own training data", d.Name())
			}
		}
	}
	for _, b := range c.Baselines {
		if b != "bm25" && b != "hybrid" {
			return fmt.Errorf("baseline %q (want bm25 or hybrid)", b)
		}
	}
	return nil
}

// Budgets a study can run under.
const (
	BudgetDemo = "demo" // one seed, sampled XQuAD-R questions: about 15 minutes on 2 cores
	BudgetFull = "full" // every seed and question: what a conclusion needs
)

// demoDepth is where the demo cuts its rankings.
const demoDepth = 100

// WithBudget scales c: "demo" keeps the first seed, samples 150 question
// ids per evaluation dataset, cuts rankings at 100 (the whole pool costs
// more per query), and drops the hybrid-search baseline and MIRACL (a
// minute of import per model);
// "full" is c as it is; a number N is the full study with N times the steps
// (for a GPU or a longer run).
func (c Config) WithBudget(budget string) (Config, error) {
	switch budget {
	case BudgetFull, "":
		return c, nil
	case BudgetDemo:
		c.Seeds = c.Seeds[:1]
		c.MaxQuestions = 150
		c.Depth = demoDepth
		c.Baselines = []string{"bm25"}
		c.MIRACL = nil
		return c, nil
	}
	n, err := strconv.ParseFloat(budget, 64)
	if err != nil || n <= 0 {
		return c, fmt.Errorf("budget %q (want demo, full, or a positive step multiplier such as 4)", budget)
	}
	c.Steps = int(float64(c.Steps) * n)
	return c, nil
}

// trained is one model the study trains per seed: a batch mode, and for
// hybrid its alpha.
type trained struct {
	Name  string // the method's name in the report and its run directory
	Mode  trainer.Mode
	Alpha string // hybrid only
}

// models lists the trained models in the config's order, the hybrid mode
// once per alpha.
func (c Config) models() []trained {
	var out []trained
	for _, m := range c.Modes {
		if m != trainer.ModeHybrid {
			out = append(out, trained{Name: string(m), Mode: m})
			continue
		}
		for _, a := range c.Alphas {
			name := string(m)
			if len(c.Alphas) > 1 {
				name += "-" + a
			}
			out = append(out, trained{Name: name, Mode: m, Alpha: a})
		}
	}
	return out
}

// modelNames are the trained models' method names.
func (c Config) modelNames() []string {
	var out []string
	for _, m := range c.models() {
		out = append(out, m.Name)
	}
	return out
}

// searchModel is the hybrid model whose vectors Weaviate's hybrid search
// fuses with BM25: the one trained at alpha 0.5 if there is one, else the
// first hybrid model.
func (c Config) searchModel() string {
	name := ""
	for _, m := range c.models() {
		if m.Mode == trainer.ModeHybrid && (name == "" || m.Alpha == "0.5") {
			name = m.Name
		}
	}
	return name
}
