// Package procmem reads this process's resident memory, for the memory
// tests and the sidecar's soak.
package procmem

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RSS returns the resident set size in bytes, from /proc/self/statm.
func RSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("read resident memory: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0, fmt.Errorf("read resident memory: unexpected /proc/self/statm %q", b)
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read resident memory: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}
