// Package buildinfo names the xling build that is running: the commit it
// was built from and whether the tree had changes, from the version
// control information the go command stamps into binaries.
package buildinfo

import "runtime/debug"

// Revision is the commit a binary was built from, with "+modified" when the
// working tree differed from it (as `git status` sees it: an untracked
// file counts), "unknown" where the go command stamped nothing (go test
// binaries, builds outside a repository or with -buildvcs=false).
func Revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, modified := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if modified {
		rev += "+modified"
	}
	return rev
}
