package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/xling-ir/xling/internal/jsonfile"
	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/static"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

// Config is one training run. It is saved as config.json in the run
// directory; a resumed run must match it.
type Config struct {
	Mode          Mode    `json:"batch_mode"`
	Alpha         float64 `json:"alpha"`
	BatchSize     int     `json:"batch_size"`
	Steps         int     `json:"steps"`
	Accumulate    int     `json:"accumulate"` // batches per optimiser step
	LR            float64 `json:"lr"`
	WeightDecay   float64 `json:"weight_decay"`
	Warmup        float64 `json:"warmup"` // share of steps with a rising learning rate
	Clip          float64 `json:"clip"`   // global gradient norm; 0 disables
	Temperature   float64 `json:"temperature"`
	Symmetric     bool    `json:"symmetric"`
	HardNegatives bool    `json:"hard_negatives"`
	Seed          uint64  `json:"seed"`

	// Arch is the encoder: "transformer" (BERT-style, libtorch) or
	// "static" (token embeddings, mean pooled, trained in Go).
	Arch string `json:"arch"`
	// The starting model: a model directory, or from scratch a size with a
	// tokenizer trained on the training text.
	Init      string `json:"init,omitempty"`
	Size      string `json:"size,omitempty"`
	VocabSize int    `json:"vocab_size,omitempty"`
	MaxLength int    `json:"max_length"`

	CheckpointEvery int `json:"checkpoint_every"`
	EvalEvery       int `json:"eval_every"`
	LogEvery        int `json:"log_every"`
}

// Architectures a run can train.
const (
	ArchTransformer = "transformer"
	ArchStatic      = "static"
)

// StaticLR is the static encoder's default peak learning rate: its rows
// start at unit scale and each sees few updates, so it needs a far larger
// rate than a transformer's.
const StaticLR = 0.05

// DefaultLR is the peak learning rate a Config with LR 0 trains at: StaticLR
// for a static encoder, 1e-3 for a transformer from scratch, and the
// fine-tuning rate of 3e-5 for one started from Init.
func (c Config) DefaultLR() float64 {
	switch {
	case c.Arch == ArchStatic:
		return StaticLR
	case c.Init == "":
		return 1e-3
	}
	return 3e-5
}

// DefaultConfig holds the paper's settings where it gives them (AdamW,
// weight decay 0.01, alpha 0.5) and small-scale CPU settings elsewhere.
func DefaultConfig() Config {
	return Config{Arch: ArchTransformer, Mode: ModeHybrid, Alpha: 0.5, BatchSize: 32, Steps: 1000, Accumulate: 1, WeightDecay: 0.01,
		Warmup: 0.1, Clip: 1.0, Temperature: 0.05, Symmetric: true, Seed: 1, Size: "small", VocabSize: 8000, MaxLength: 64,
		CheckpointEvery: 200, EvalEvery: 200, LogEvery: 20}
}

// Run is a training run in a directory.
type Run struct {
	Dir    string
	Config Config
	Train  []Item
	Valid  []Item
	Logger *slog.Logger
	// Threads is libtorch's intra-op thread count; 0 keeps its default. It
	// is not part of Config: a run may resume with another.
	Threads int
	// OnStep, if set, is called after every optimiser step (tests use it
	// to interrupt a run).
	OnStep func(step int, loss float64)
}

// StepLog is one line of train.jsonl.
type StepLog struct {
	Step         int     `json:"step"`
	Loss         float64 `json:"loss"`
	LR           float64 `json:"lr"`
	GradNorm     float64 `json:"grad_norm"`
	PairsPerSec  float64 `json:"pairs_per_second"`
	MonoBatches  int     `json:"mono_batches"`
	TotalBatches int     `json:"batches"`
}

// state.json of a checkpoint.
type checkpointState struct {
	Step    int             `json:"step"`
	Loss    float64         `json:"loss"`
	Sampler json.RawMessage `json:"sampler"`
	Config  Config          `json:"config"`
}

// Result summarises a finished run.
type Result struct {
	Step     int
	Loss     float64 // the last step's
	ModelDir string  // the exported final model
	BestDir  string  // the exported best model by validation, if evaluated
	Best     *Evaluation
}

// Execute trains, resuming from the run directory's latest checkpoint if
// there is one. Cancelling ctx stops at once, as a killed process would;
// the next Execute resumes from the last checkpoint.
func (r *Run) Execute(ctx context.Context) (Result, error) {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if r.Config.LR == 0 {
		r.Config.LR = r.Config.DefaultLR()
	}
	cfg := r.Config
	if cfg.Steps <= 0 || cfg.BatchSize < 2 || cfg.Accumulate < 1 || cfg.LR <= 0 || cfg.Temperature <= 0 {
		return Result{}, fmt.Errorf("train: steps, batch size (>= 2), accumulation, learning rate and temperature must be positive")
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return Result{}, err
	}
	if err := r.checkConfig(); err != nil {
		return Result{}, err
	}
	sampler, err := NewSampler(r.Train, SamplerConfig{Mode: cfg.Mode, Alpha: cfg.Alpha, BatchSize: cfg.BatchSize, Seed: cfg.Seed})
	if err != nil {
		return Result{}, err
	}

	runtime.LockOSThread() // libtorch's grad mode is per OS thread
	defer runtime.UnlockOSThread()
	if r.Threads > 0 {
		torchx.SetThreads(r.Threads)
	}
	enc, err := r.startingModel(ctx)
	if err != nil {
		return Result{}, err
	}
	defer enc.close()

	step, loss, resumed, err := r.resume(enc, sampler, log)
	if err != nil {
		return Result{}, err
	}
	if !resumed {
		// The starting model, exported for the untrained baseline.
		if err := r.export(filepath.Join(r.Dir, "init"), enc); err != nil {
			return Result{}, err
		}
	}
	// Steps after the checkpoint will run again: their log lines go, so
	// that the logs read as one uninterrupted run.
	for _, name := range []string{"train.jsonl", "eval.jsonl"} {
		if err := truncateLog(filepath.Join(r.Dir, name), step); err != nil {
			return Result{}, err
		}
	}

	trainLog, err := os.OpenFile(filepath.Join(r.Dir, "train.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return Result{}, err
	}
	defer trainLog.Close()

	res := Result{}
	start, startStep, pairs := time.Now(), step, 0
	for step < cfg.Steps {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		// Dropout draws from libtorch's generator: seeding it per step makes
		// a resumed run repeat an uninterrupted one exactly.
		torchx.ManualSeed(int64(cfg.Seed*1_000_003 + uint64(step)))
		total := 0.0
		for k := 0; k < cfg.Accumulate; k++ {
			batch := sampler.Next()
			l, err := enc.lossBackward(batch, cfg, 1/float64(cfg.Accumulate))
			if err != nil {
				return Result{}, fmt.Errorf("step %d: %w", step+1, err)
			}
			total += l / float64(cfg.Accumulate)
			pairs += len(batch)
		}
		lr := learningRate(cfg, step)
		norm := enc.step(lr, cfg.Clip)
		step++
		loss = total
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return Result{}, fmt.Errorf("step %d: loss is %g: lower the learning rate", step, loss)
		}
		if r.OnStep != nil {
			r.OnStep(step, loss)
		}
		if step%max(cfg.LogEvery, 1) == 0 || step == cfg.Steps {
			elapsed := time.Since(start).Seconds()
			rate := float64(pairs) / elapsed
			eta := time.Duration(float64(cfg.Steps-step) / (float64(step-startStep) / elapsed) * float64(time.Second))
			log.Info("training", "step", step, "of", cfg.Steps, "loss", fmt.Sprintf("%.4f", loss), "lr", fmt.Sprintf("%.2e", lr),
				"pairs_per_s", fmt.Sprintf("%.1f", rate), "eta", eta.Round(time.Second))
			b, _ := json.Marshal(StepLog{Step: step, Loss: loss, LR: lr, GradNorm: norm, PairsPerSec: rate, MonoBatches: sampler.Mono, TotalBatches: sampler.Batches})
			trainLog.Write(append(b, '\n'))
		}
		if cfg.EvalEvery > 0 && len(r.Valid) > 0 && (step%cfg.EvalEvery == 0 || step == cfg.Steps) {
			ev, err := evaluate(enc, r.Valid)
			if err != nil {
				return Result{}, err
			}
			ev.Step = step
			if err := jsonfile.Append(filepath.Join(r.Dir, "eval.jsonl"), ev); err != nil {
				return Result{}, err
			}
			log.Info("validation", "step", step, "map_mono", fmt.Sprintf("%.4f", ev.Mono.MAP), "map_cross", fmt.Sprintf("%.4f", ev.Cross.MAP), "map_multi", fmt.Sprintf("%.4f", ev.Multi.MAP))
			if best, _ := r.bestEvaluation(); best == nil || ev.Multi.MAP > best.Multi.MAP || best.Step == ev.Step {
				if err := r.export(filepath.Join(r.Dir, "best"), enc); err != nil {
					return Result{}, err
				}
				if err := jsonfile.Write(filepath.Join(r.Dir, "best", "evaluation.json"), ev); err != nil {
					return Result{}, err
				}
			}
		}
		if (cfg.CheckpointEvery > 0 && step%cfg.CheckpointEvery == 0) || step == cfg.Steps {
			if err := r.checkpoint(step, loss, enc, sampler); err != nil {
				return Result{}, err
			}
		}
	}
	res.Step, res.Loss = step, loss
	res.ModelDir = filepath.Join(r.Dir, "model")
	if err := r.export(res.ModelDir, enc); err != nil {
		return Result{}, err
	}
	if best, err := r.bestEvaluation(); err == nil && best != nil {
		res.Best, res.BestDir = best, filepath.Join(r.Dir, "best")
	}
	return res, nil
}

// learningRate warms up linearly over the warm-up share, then decays
// linearly to zero.
func learningRate(cfg Config, step int) float64 {
	warm := int(cfg.Warmup * float64(cfg.Steps))
	if step < warm {
		return cfg.LR * float64(step+1) / float64(warm)
	}
	return cfg.LR * math.Max(0, float64(cfg.Steps-step)/float64(max(1, cfg.Steps-warm)))
}

// startingModel loads cfg.Init or builds a fresh model with a tokenizer
// trained on the training text (saved in the run directory, so that a
// resumed run uses the same one).
func (r *Run) startingModel(ctx context.Context) (dualEncoder, error) {
	cfg := r.Config
	opts := vectorizer.DefaultOptions()
	opts.MaxSeqLength = cfg.MaxLength
	opts.Languages = Languages(r.Train)
	opts.Training = map[string]any{"arch": cfg.Arch, "batch_mode": cfg.Mode, "alpha": cfg.Alpha, "steps": cfg.Steps, "batch_size": cfg.BatchSize, "seed": cfg.Seed, "temperature": cfg.Temperature}
	var (
		mc      modelconfig.Config
		tok     *tokenize.Tokenizer
		weights string
		err     error
	)
	if cfg.Init != "" {
		if mc, err = modelconfig.Read(filepath.Join(cfg.Init, vectorizer.ConfigFile)); err != nil {
			return nil, err
		}
		if (mc.ModelType == modelconfig.Static) != (cfg.Arch == ArchStatic) {
			return nil, fmt.Errorf("--init %s holds a %s model, but the run trains --arch %s", cfg.Init, mc.ModelType, cfg.Arch)
		}
		if tok, err = tokenize.Load(filepath.Join(cfg.Init, vectorizer.TokenizerFile), cfg.MaxLength); err != nil {
			return nil, err
		}
		weights = filepath.Join(cfg.Init, vectorizer.WeightsFile)
		if err := vectorizer.CheckWeights(mc, weights); err != nil {
			return nil, err
		}
		if tok.MaxID() >= int(mc.VocabSize) {
			return nil, fmt.Errorf("--init %s: tokenizer.json can produce token id %d but config.json's vocab_size is %d", cfg.Init, tok.MaxID(), mc.VocabSize)
		}
	} else {
		if tok, err = r.trainedTokenizer(ctx); err != nil {
			return nil, err
		}
		vocab := int64(tok.VocabSize())
		switch cfg.Arch {
		case ArchStatic:
			mc, err = vectorizer.StaticSizeConfig(cfg.Size, vocab)
		case ArchTransformer:
			mc, err = vectorizer.SizeConfig(cfg.Size, vocab)
			mc.MaxPositionEmbeddings = int64(max(cfg.MaxLength, 64))
		default:
			err = fmt.Errorf("unknown architecture %q (want %s or %s)", cfg.Arch, ArchTransformer, ArchStatic)
		}
		if err != nil {
			return nil, err
		}
	}
	if cfg.Arch == ArchStatic {
		m, err := static.New(mc)
		if err != nil {
			return nil, err
		}
		if weights != "" {
			err = m.Load(weights)
		} else {
			m.Init(cfg.Seed)
		}
		return newStaticNet(m, tok, opts, cfg.WeightDecay), err
	}
	return newTorchNet(mc, weights, cfg.Seed, tok, opts, cfg.WeightDecay)
}

// trainedTokenizer trains a WordPiece tokenizer on the training text, once
// per run directory.
func (r *Run) trainedTokenizer(ctx context.Context) (*tokenize.Tokenizer, error) {
	tokPath := filepath.Join(r.Dir, vectorizer.TokenizerFile)
	if _, err := os.Stat(tokPath); err != nil {
		var text strings.Builder
		for _, it := range r.Train {
			text.WriteString(it.Query + "\n" + it.Passage + "\n")
		}
		b, err := tokenize.TrainWordPiece(ctx, strings.NewReader(text.String()), tokenize.TrainOptions{VocabSize: r.Config.VocabSize})
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(tokPath, b, 0o644); err != nil {
			return nil, err
		}
	}
	return tokenize.Load(tokPath, r.Config.MaxLength)
}

func (r *Run) export(dir string, enc dualEncoder) error {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	tc := enc.tokens()
	tj, err := tc.tok.JSON()
	if err != nil {
		return err
	}
	if err := vectorizer.WriteDir(tmp, vectorizer.Files{Config: enc.config(), Options: tc.opts, Tokenizer: tj, Model: enc.weights()}); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// checkConfig saves config.json, or checks that a resumed run's matches.
func (r *Run) checkConfig() error {
	path := filepath.Join(r.Dir, "config.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return jsonfile.Write(path, r.Config)
	}
	if err != nil {
		return err
	}
	var saved Config
	if err := json.Unmarshal(b, &saved); err != nil {
		return fmt.Errorf("run directory %s: corrupt config.json: %w", r.Dir, err)
	}
	if saved != r.Config {
		a, _ := json.Marshal(saved)
		c, _ := json.Marshal(r.Config)
		return fmt.Errorf("run directory %s holds a run with another configuration:\n  saved %s\n  now   %s\nuse a new --out or the same flags", r.Dir, a, c)
	}
	return nil
}

func (r *Run) bestEvaluation() (*Evaluation, error) {
	b, err := os.ReadFile(filepath.Join(r.Dir, "best", "evaluation.json"))
	if err != nil {
		return nil, err
	}
	var ev Evaluation
	return &ev, json.Unmarshal(b, &ev)
}
