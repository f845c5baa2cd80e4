//go:build !cgo

package torchx

// The static-only build (CGO_ENABLED=0) has no libtorch: these report that
// and do nothing, so that commands for static models need no build tags.

// Allocator reports that no C allocator is linked.
func Allocator() string { return "none (static-only build)" }

// Version reports that no libtorch is linked.
func Version() string { return "none (static-only build)" }

// SetThreads does nothing without libtorch.
func SetThreads(int) {}

// Threads is 0 without libtorch.
func Threads() int { return 0 }

// ManualSeed does nothing without libtorch.
func ManualSeed(int64) {}
