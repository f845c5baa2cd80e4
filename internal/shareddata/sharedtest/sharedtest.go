// Package sharedtest gives tests the data directory beside the repository.
package sharedtest

import (
	"os"
	"testing"

	"github.com/xling-ir/xling/internal/shareddata"
)

// Dir returns the data directory for a test. Without it the test is
// skipped, except under CI=true, where that is a failure: CI must not pass
// by skipping the tests on real data.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := shareddata.Dir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return dir
}
