// Package shareddata finds the data directory that sits beside the
// repository (../shared/data), for tests, benchmarks and the demo; package
// qa and miracl read what is in it.
package shareddata

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Env names the variable that points at the data directory.
const Env = "XLING_DATA_DIR"

// ErrNotFound reports that no data directory was found.
var ErrNotFound = errors.New("shared data directory not found")

// Dir returns $XLING_DATA_DIR, or the first shared/data found beside this
// directory or one of its parents.
func Dir() (string, error) {
	if d := os.Getenv(Env); d != "" {
		if _, err := os.Stat(d); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNotFound, Env, d, err)
		}
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		d := filepath.Join(dir, "shared", "data")
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: set %s or place the data at ../shared/data beside the repository", ErrNotFound, Env)
		}
		dir = parent
	}
}
