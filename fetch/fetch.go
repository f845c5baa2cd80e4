// Package fetch downloads datasets from their public sources into a data
// directory, checking each file's SHA-256, so that a study runs on exactly
// the data its report names.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xling-ir/xling/internal/checksum"
)

// File is one file of a dataset: where it goes under the data directory,
// where it comes from, and its expected SHA-256.
type File struct {
	Name, URL, SHA256 string
}

// ErrChecksum reports a file whose content is not the expected one.
var ErrChecksum = errors.New("checksum mismatch")

// Options tunes a fetch.
type Options struct {
	Client  *http.Client // nil means one with a 5-minute timeout per file
	Retries int          // attempts per file; 0 means 3
	Logger  *slog.Logger
}

// Select keeps the files under the given top-level directories (xquad-r,
// mlqa-r, miracl); none keeps all.
func Select(files []File, dirs ...string) []File {
	if len(dirs) == 0 {
		return files
	}
	var out []File
	for _, f := range files {
		for _, d := range dirs {
			if strings.HasPrefix(f.Name, strings.TrimSuffix(d, "/")+"/") {
				out = append(out, f)
			}
		}
	}
	return out
}

// Fetch makes dir hold every file with its expected checksum: files already
// there and intact are kept, others are downloaded to a temporary name,
// verified, and renamed into place, so an interrupted fetch never leaves a
// partial file under the real name. It returns how many it downloaded.
func Fetch(ctx context.Context, dir string, files []File, opts Options) (int, error) {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 5 * time.Minute}
	}
	if opts.Retries <= 0 {
		opts.Retries = 3
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fetched := 0
	for i, f := range files {
		path := filepath.Join(dir, filepath.FromSlash(f.Name))
		if sum, err := checksum.File(path); err == nil && sum == f.SHA256 {
			continue
		} else if err == nil {
			log.Warn("replacing a file with another checksum", "file", path, "have", sum, "want", f.SHA256)
		}
		var err error
		for attempt := 1; attempt <= opts.Retries; attempt++ {
			if err = download(ctx, opts.Client, f, path); err == nil || errors.Is(err, ErrChecksum) || ctx.Err() != nil {
				break
			}
			log.Warn("download failed, retrying", "url", f.URL, "attempt", attempt, "err", err)
			select {
			case <-time.After(time.Duration(attempt) * time.Second):
			case <-ctx.Done():
			}
		}
		if err != nil {
			return fetched, err
		}
		fetched++
		log.Info("fetched", "file", f.Name, "n", i+1, "of", len(files))
	}
	return fetched, nil
}

func download(ctx context.Context, client *http.Client, f File, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", f.Name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", f.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: HTTP %s", f.URL, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		tmp.Close()
		return fmt.Errorf("fetch %s: %w", f.URL, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("fetch %s: %w: got sha256 %s, want %s", f.URL, ErrChecksum, got, f.SHA256)
	}
	return os.Rename(tmp.Name(), path)
}
