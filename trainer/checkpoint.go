package trainer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/xling-ir/xling/internal/checksum"
	"github.com/xling-ir/xling/internal/jsonfile"
)

// A checkpoint is a directory checkpoints/step-NNNNNNN holding the model,
// the optimiser, state.json and SHA256SUMS (written last, in sha256sum's
// format). The last two are kept, so that a corrupt newest one leaves an
// intact one to resume from.
const (
	sumsFile   = "SHA256SUMS"
	keepLatest = 2
)

var checkpointFiles = []string{"model.safetensors", "optimizer.safetensors", "state.json"}

// errCorrupt marks a checkpoint that cannot be trusted (as opposed to one
// written by another configuration, which is the user's mistake).
var errCorrupt = errors.New("corrupt checkpoint")

func (r *Run) checkpointDir() string { return filepath.Join(r.Dir, "checkpoints") }

// checkpoints lists the complete checkpoint directories, newest first.
func (r *Run) checkpoints() []string {
	dirs, _ := filepath.Glob(filepath.Join(r.checkpointDir(), "step-*"))
	out := dirs[:0]
	for _, d := range dirs {
		if !strings.HasSuffix(d, ".tmp") {
			out = append(out, d)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// checkpoint writes model, optimiser and sampler state to a new directory,
// then renames it into place and points LATEST at it.
func (r *Run) checkpoint(step int, loss float64, enc dualEncoder, s *Sampler) error {
	name := fmt.Sprintf("step-%07d", step)
	dir := filepath.Join(r.checkpointDir(), name)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := enc.weights().Save(filepath.Join(tmp, "model.safetensors")); err != nil {
		return err
	}
	if err := enc.saveOptimizer(filepath.Join(tmp, "optimizer.safetensors")); err != nil {
		return err
	}
	sb, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := jsonfile.Write(filepath.Join(tmp, "state.json"), checkpointState{Step: step, Loss: loss, Sampler: sb, Config: r.Config}); err != nil {
		return err
	}
	var sums bytes.Buffer
	for _, f := range checkpointFiles {
		sum, err := checksum.File(filepath.Join(tmp, f))
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", name, err)
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, f)
	}
	if err := os.WriteFile(filepath.Join(tmp, sumsFile), sums.Bytes(), 0o644); err != nil {
		return err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	latest := filepath.Join(r.checkpointDir(), "LATEST")
	if err := os.WriteFile(latest+".tmp", []byte(name+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(latest+".tmp", latest); err != nil {
		return err
	}
	for i, d := range r.checkpoints() {
		if i >= keepLatest {
			os.RemoveAll(d)
		}
	}
	return nil
}

// resume restores the newest intact checkpoint, if any. A corrupt one
// (checksum mismatch, unreadable or non-finite weights) is logged and
// skipped for the one before it; a run whose every checkpoint is corrupt
// fails rather than silently starting over.
func (r *Run) resume(enc dualEncoder, s *Sampler, log *slog.Logger) (step int, loss float64, resumed bool, err error) {
	dirs := r.checkpoints()
	if len(dirs) == 0 {
		return 0, 0, false, nil
	}
	var skipped []string
	for _, dir := range dirs {
		step, loss, err := r.restore(dir, enc, s)
		if errors.Is(err, errCorrupt) {
			log.Warn("checkpoint is corrupt: falling back to the previous one", "checkpoint", dir, "err", err)
			skipped = append(skipped, fmt.Sprintf("%s: %v", filepath.Base(dir), err))
			continue
		}
		if err != nil {
			return 0, 0, false, fmt.Errorf("resume from %s: %w", dir, err)
		}
		log.Info("resumed", "checkpoint", dir, "step", step, "skipped_corrupt", len(skipped))
		return step, loss, true, nil
	}
	return 0, 0, false, fmt.Errorf("resume %s: no intact checkpoint (%s); remove the run directory to start over", r.Dir, strings.Join(skipped, "; "))
}

func (r *Run) restore(dir string, enc dualEncoder, s *Sampler) (int, float64, error) {
	if err := verifySums(dir); err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	var st checkpointState
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, 0, fmt.Errorf("%w: state.json: %v", errCorrupt, err)
	}
	if st.Config != r.Config {
		a, _ := json.Marshal(st.Config)
		c, _ := json.Marshal(r.Config)
		return 0, 0, fmt.Errorf("the checkpoint was written by a run with another configuration:\n  saved %s\n  now   %s", a, c)
	}
	// Checksums passed, so a failure here means the files were written
	// wrong (NaN weights, say): as untrustworthy as a flipped bit.
	if err := enc.load(filepath.Join(dir, "model.safetensors")); err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if err := enc.loadOptimizer(filepath.Join(dir, "optimizer.safetensors"), st.Step); err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if err := json.Unmarshal(st.Sampler, s); err != nil {
		return 0, 0, fmt.Errorf("%w: sampler state: %v", errCorrupt, err)
	}
	return st.Step, st.Loss, nil
}

// verifySums checks every file of a checkpoint against its SHA256SUMS.
func verifySums(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, sumsFile))
	if err != nil {
		return fmt.Errorf("no %s (an interrupted write, or a checkpoint from before checksums): %w", sumsFile, err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			return fmt.Errorf("%s: malformed line %q", sumsFile, line)
		}
		want[name] = sum
	}
	for _, f := range checkpointFiles {
		sum, err := checksum.File(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if want[f] != sum {
			return fmt.Errorf("%s: SHA-256 %s does not match %s's %s", f, sum, sumsFile, want[f])
		}
	}
	return nil
}

// truncateLog keeps the lines of a JSON-lines log whose "step" is at most
// step, dropping a torn last line; a missing log is fine.
func truncateLog(path string, step int) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var kept bytes.Buffer
	dropped := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 16<<20)
	for sc.Scan() {
		var line struct {
			Step *int `json:"step"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Step == nil || *line.Step > step {
			dropped = true
			continue
		}
		kept.Write(sc.Bytes())
		kept.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if !dropped {
		return nil
	}
	if err := os.WriteFile(path+".tmp", kept.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
