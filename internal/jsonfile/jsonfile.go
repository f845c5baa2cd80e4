// Package jsonfile writes JSON files that a crash never leaves half
// written: run state that a resumed job trusts.
package jsonfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Write writes v as indented JSON to path through a temporary file and a
// rename, so readers see the old file or the new one, never a torn one.
func Write(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(path+".tmp", path)
}

// Append adds v as one JSON line to path, creating it.
func Append(path string, v any) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	_, err = f.Write(append(b, '\n'))
	return errors.Join(err, f.Close())
}
