package checksum

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "abc")
	os.WriteFile(path, []byte("abc"), 0o644)
	// FIPS 180-2's example.
	if got, err := File(path); err != nil || got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("File(abc) = %s, %v", got, err)
	}
	if _, err := File(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file has a checksum")
	}
}
