// Package buildbin finds the tools that the Makefile builds into .build/bin
// (Weaviate, helm), so tests and commands use the pinned versions.
package buildbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNotFound means the tool is neither named by its variable, nor in a
// .build/bin above the working directory, nor on PATH.
var ErrNotFound = errors.New("tool not found")

// Find returns the path of the tool name: the file named by the environment
// variable env if set, else .build/bin/name in the working directory or the
// nearest parent holding one, else name on PATH. make is the target that
// builds it, for the error message.
func Find(name, env, make string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNotFound, env, p, err)
		}
		return p, nil
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			p := filepath.Join(dir, ".build", "bin", name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s: run `make %s` (it builds .build/bin/%s) or set %s", ErrNotFound, name, make, name, env)
}
