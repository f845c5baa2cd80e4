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
	// Group, if set, makes the run one rank of a data-parallel run (see
	// Group); every rank runs Execute with the same Config and data.
	Group Group
}

// lead says whether this process writes the run's files: it trains alone,
// or it is rank 0.
func (r *Run) lead() bool { return r.Group == nil || r.Group.Rank() == 0 }

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
	runtime.LockOSThread() // libtorch's grad mode is per OS thread
	defer runtime.UnlockOSThread()
	t, err := r.start(ctx)
	if err != nil {
		return Result{}, err
	}
	defer t.close()
	cfg := r.Config
	due := func(every int) bool { return (every > 0 && t.step%every == 0) || t.step == cfg.Steps }
	for t.step < cfg.Steps {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if err := t.trainStep(); err != nil {
			return Result{}, err
		}
		if r.OnStep != nil {
			r.OnStep(t.step, t.loss)
		}
		if !r.lead() {
			continue
		}
		if due(max(cfg.LogEvery, 1)) {
			t.logProgress()
		}
		if len(r.Valid) > 0 && cfg.EvalEvery > 0 && due(cfg.EvalEvery) {
			if err := r.validate(t); err != nil {
				return Result{}, err
			}
		}
		if due(cfg.CheckpointEvery) {
			if err := r.checkpoint(t.step, t.loss, t.enc, t.sampler); err != nil {
				return Result{}, err
			}
		}
	}
	return r.finish(t)
}

// training is the state of a run between steps.
type training struct {
	cfg      Config
	enc      dualEncoder
	sampler  *Sampler
	log      *slog.Logger
	trainLog *os.File // train.jsonl; rank 0's only
	group    Group    // nil when training alone

	step      int
	loss, lr  float64 // the last step's
	gradNorm  float64 // before clipping
	start     time.Time
	startStep int
	pairs     int // trained on since start
}

func (t *training) close() {
	if t.trainLog != nil {
		t.trainLog.Close()
	}
	t.enc.close()
}

// start checks the configuration, builds the model and resumes from the
// latest checkpoint, or exports the starting model for the untrained
// baseline.
func (r *Run) start(ctx context.Context) (*training, error) {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if r.Config.LR == 0 {
		r.Config.LR = r.Config.DefaultLR()
	}
	cfg := r.Config
	if cfg.Steps <= 0 || cfg.BatchSize < 2 || cfg.Accumulate < 1 || cfg.LR <= 0 || cfg.Temperature <= 0 {
		return nil, fmt.Errorf("train: steps, batch size (>= 2), accumulation, learning rate and temperature must be positive")
	}
	if g := r.Group; g != nil && cfg.BatchSize < g.Size() {
		return nil, fmt.Errorf("train: a batch of %d pairs cannot be shared by %d ranks", cfg.BatchSize, g.Size())
	}
	if r.lead() {
		if err := os.MkdirAll(r.Dir, 0o755); err != nil {
			return nil, err
		}
		if err := r.checkConfig(); err != nil {
			return nil, err
		}
	}
	// An empty text fails where the batch holding it is tokenised: say so
	// before the first step, not thousands of steps in.
	for i, it := range append(append([]Item{}, r.Train...), r.Valid...) {
		if strings.TrimSpace(it.Query) == "" || strings.TrimSpace(it.Passage) == "" {
			return nil, fmt.Errorf("train: item %d (group %s, %s) has an empty query or passage", i, it.Group, it.Lang)
		}
	}
	sampler, err := NewSampler(r.Train, SamplerConfig{Mode: cfg.Mode, Alpha: cfg.Alpha, BatchSize: cfg.BatchSize, Seed: cfg.Seed})
	if err != nil {
		return nil, err
	}
	if r.Threads > 0 {
		torchx.SetThreads(r.Threads)
	}
	enc, err := r.startingModel(ctx)
	if err != nil {
		return nil, err
	}
	t := &training{cfg: cfg, enc: enc, sampler: sampler, log: log, group: r.Group}
	if r.lead() {
		err = r.resumeOrExport(t)
	}
	if err == nil && r.Group != nil {
		err = t.syncState(r.Group)
	}
	if err != nil {
		enc.close()
		return nil, err
	}
	t.start, t.startStep = time.Now(), t.step
	return t, nil
}

func (r *Run) resumeOrExport(t *training) error {
	step, loss, resumed, err := r.resume(t.enc, t.sampler, t.log)
	if err != nil {
		return err
	}
	t.step, t.loss = step, loss
	if !resumed {
		if err := r.export(filepath.Join(r.Dir, "init"), t.enc); err != nil {
			return err
		}
	}
	// Steps after the checkpoint will run again: their log lines go, so
	// that the logs read as one uninterrupted run.
	for _, name := range []string{"train.jsonl", "eval.jsonl"} {
		if err := truncateLog(filepath.Join(r.Dir, name), step); err != nil {
			return err
		}
	}
	t.trainLog, err = os.OpenFile(filepath.Join(r.Dir, "train.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	return err
}

// trainStep runs one optimiser step over Accumulate batches.
func (t *training) trainStep() error {
	cfg := t.cfg
	// Dropout draws from libtorch's generator: seeding it per step (and
	// rank) makes a resumed run repeat an uninterrupted one exactly.
	var rank uint64
	if t.group != nil {
		rank = uint64(t.group.Rank())
	}
	torchx.ManualSeed(int64(cfg.Seed*1_000_003 + uint64(t.step) + rank<<32))
	total := 0.0
	for k := 0; k < cfg.Accumulate; k++ {
		batch, local := t.sampler.Next(), (*peers)(nil)
		mine := batch
		if t.group != nil {
			mine, local = shard(batch, t.group.Rank(), t.group.Size()), &peers{t.group}
		}
		l, err := t.enc.lossBackward(mine, cfg, 1/float64(cfg.Accumulate), local)
		if err != nil {
			return fmt.Errorf("step %d: %w", t.step+1, err)
		}
		total += l / float64(cfg.Accumulate)
		t.pairs += len(batch)
	}
	if t.group != nil {
		if err := t.enc.reduce(t.group); err != nil {
			return fmt.Errorf("step %d: %w", t.step+1, err)
		}
		t.group.Progress(t.step + 1)
	}
	t.lr = learningRate(cfg, t.step)
	t.gradNorm = t.enc.step(t.lr, cfg.Clip)
	t.step++
	t.loss = total
	if math.IsNaN(t.loss) || math.IsInf(t.loss, 0) {
		return fmt.Errorf("step %d: loss is %g: lower the learning rate", t.step, t.loss)
	}
	return nil
}

// logProgress writes a progress line with rate and ETA, and the step to
// train.jsonl.
func (t *training) logProgress() {
	elapsed := time.Since(t.start).Seconds()
	rate := float64(t.pairs) / elapsed
	eta := time.Duration(float64(t.cfg.Steps-t.step) / (float64(t.step-t.startStep) / elapsed) * float64(time.Second))
	t.log.Info("training", "step", t.step, "of", t.cfg.Steps, "loss", fmt.Sprintf("%.4f", t.loss), "lr", fmt.Sprintf("%.2e", t.lr),
		"pairs_per_s", fmt.Sprintf("%.1f", rate), "eta", eta.Round(time.Second))
	b, _ := json.Marshal(StepLog{Step: t.step, Loss: t.loss, LR: t.lr, GradNorm: t.gradNorm, PairsPerSec: rate, MonoBatches: t.sampler.Mono, TotalBatches: t.sampler.Batches})
	t.trainLog.Write(append(b, '\n'))
}

// validate evaluates the validation items, appends to eval.jsonl and
// exports the model as best when multilingual mAP is the highest yet.
func (r *Run) validate(t *training) error {
	ev, err := evaluate(t.enc, r.Valid)
	if err != nil {
		return err
	}
	ev.Step = t.step
	if err := jsonfile.Append(filepath.Join(r.Dir, "eval.jsonl"), ev); err != nil {
		return err
	}
	t.log.Info("validation", "step", t.step, "map_mono", fmt.Sprintf("%.4f", ev.Mono.MAP), "map_cross", fmt.Sprintf("%.4f", ev.Cross.MAP), "map_multi", fmt.Sprintf("%.4f", ev.Multi.MAP))
	if best, _ := r.bestEvaluation(); best == nil || ev.Multi.MAP > best.Multi.MAP || best.Step == ev.Step {
		if err := r.export(filepath.Join(r.Dir, "best"), t.enc); err != nil {
			return err
		}
		return jsonfile.Write(filepath.Join(r.Dir, "best", "evaluation.json"), ev)
	}
	return nil
}

// finish exports the final model. Every rank of a group returns only once
// rank 0 has, so that none reports success for a run whose export failed.
func (r *Run) finish(t *training) (Result, error) {
	res := Result{Step: t.step, Loss: t.loss, ModelDir: filepath.Join(r.Dir, "model")}
	if r.lead() {
		if err := r.export(res.ModelDir, t.enc); err != nil {
			return Result{}, err
		}
	}
	if r.Group != nil {
		if err := r.Group.Barrier("end of training"); err != nil {
			return Result{}, err
		}
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
	text, err := vectorizer.NewTextTokenizer(tok, opts, mc)
	if err != nil {
		return nil, fmt.Errorf("--init %s: %w", cfg.Init, err)
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
		return newStaticNet(m, text, cfg.WeightDecay), err
	}
	return newTorchNet(mc, weights, cfg.Seed, text, cfg.WeightDecay)
}

// trainedTokenizer trains a WordPiece tokenizer on the training text, once
// per run directory.
func (r *Run) trainedTokenizer(ctx context.Context) (*tokenize.Tokenizer, error) {
	if r.Group == nil {
		return r.trainTokenizer(ctx)
	}
	// Rank 0 trains it (or reads it back on resume) and hands it on: the
	// other ranks may not share its disk.
	var b []byte
	if r.lead() {
		tok, err := r.trainTokenizer(ctx)
		if err != nil {
			return nil, err
		}
		if b, err = tok.JSON(); err != nil {
			return nil, err
		}
	}
	b, err := r.Group.BroadcastBytes("tokenizer", b, 0)
	if err != nil {
		return nil, err
	}
	return tokenize.Parse(b, r.Config.MaxLength)
}

func (r *Run) trainTokenizer(ctx context.Context) (*tokenize.Tokenizer, error) {
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
	text := enc.tokens().text
	tj, err := text.JSON()
	if err != nil {
		return err
	}
	if err := vectorizer.WriteDir(tmp, vectorizer.Files{Config: enc.config(), Options: text.Options(), Tokenizer: tj, Model: enc.weights()}); err != nil {
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
