package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestVersionNamesCommit: `xling version` names the commit the binary was
// built from, and says whether the tree had changes, as git sees them.
func TestVersionNamesCommit(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	status, err := exec.Command("git", "status", "--porcelain").Output()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := xling(t, "", "version")
	if err != nil {
		t.Fatalf("xling version: %v\n%s", err, stderr)
	}
	want := "xling " + strings.TrimSpace(string(head))
	if len(status) > 0 {
		want += "+modified"
	}
	if first, _, _ := strings.Cut(stdout, "\n"); first != want {
		t.Errorf("xling version says %q, want %q (git status: %d bytes)", first, want, len(status))
	}
}
