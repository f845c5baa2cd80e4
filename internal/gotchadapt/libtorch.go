// Package gotchadapt adapts the gotch module to the libtorch installed on this
// machine: it copies gotch from the Go module cache into a build folder,
// rewrites its cgo flags, replaces the generated C++ wrappers that this
// libtorch cannot compile by stubs, and points a go.work file at the copy.
package gotchadapt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// Libtorch describes one libtorch installation.
type Libtorch struct {
	Root        string   // the LIBTORCH directory, or "" for Debian's libtorch-dev
	IncludeDirs []string // passed as -I to the C++ compiler
	LibDir      string   // holds libtorch.so, libtorch_cpu.so and libc10.so
	Version     string   // e.g. "1.13.0", read from torch/version.h
	CUDA        bool     // libtorch_cuda.so is present, so CUDA is linked
	CXX11ABI    bool     // the libraries use the C++11 std::string ABI
}

// debianLibDirs are where Debian and Ubuntu put libtorch-dev's libraries.
var debianLibDirs = []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"}

// ErrNoLibtorch reports that no libtorch installation was found.
var ErrNoLibtorch = errors.New("no libtorch found")

// Detect finds the libtorch to build against. An empty root means Debian's
// libtorch-dev under /usr; otherwise root is a libtorch directory holding
// include/ and lib/ (a libtorch zip, or torch/ inside a PyTorch installation).
func Detect(root string) (Libtorch, error) {
	if root == "" {
		return detectIn("", "/usr/include", debianLibDirs)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return Libtorch{}, fmt.Errorf("LIBTORCH=%s: %w", root, err)
	}
	return detectIn(abs, filepath.Join(abs, "include"), []string{filepath.Join(abs, "lib")})
}

func detectIn(root, include string, libDirs []string) (Libtorch, error) {
	where := "Debian's libtorch-dev (/usr)"
	fix := "install it with: apt-get install -y libtorch-dev (or set LIBTORCH to a libtorch directory)"
	if root != "" {
		where = "LIBTORCH=" + root
		fix = "point LIBTORCH at a directory holding include/torch/csrc/api/include/torch/torch.h and lib/libtorch.so (for PyTorch: .../site-packages/torch), or unset it to use Debian's libtorch-dev"
	}
	api := filepath.Join(include, "torch", "csrc", "api", "include")
	if _, err := os.Stat(filepath.Join(api, "torch", "torch.h")); err != nil {
		return Libtorch{}, fmt.Errorf("%w in %s: %s is missing; %s", ErrNoLibtorch, where, filepath.Join(api, "torch", "torch.h"), fix)
	}
	lt := Libtorch{Root: root, IncludeDirs: []string{include, api}}
	for _, d := range libDirs {
		if fileExists(filepath.Join(d, "libtorch_cpu.so")) && fileExists(filepath.Join(d, "libc10.so")) {
			lt.LibDir = d
			break
		}
	}
	if lt.LibDir == "" {
		return Libtorch{}, fmt.Errorf("%w in %s: headers found but no libtorch_cpu.so and libc10.so in %v; %s", ErrNoLibtorch, where, libDirs, fix)
	}
	v, err := readVersion(filepath.Join(api, "torch", "version.h"))
	if err != nil {
		return Libtorch{}, err
	}
	lt.Version = v
	lt.CUDA = fileExists(filepath.Join(lt.LibDir, "libtorch_cuda.so"))
	lt.CXX11ABI, err = usesCXX11ABI(filepath.Join(lt.LibDir, "libc10.so"))
	if err != nil {
		return Libtorch{}, err
	}
	return lt, nil
}

var versionRe = regexp.MustCompile(`#define TORCH_VERSION_(MAJOR|MINOR|PATCH) (\d+)`)

func readVersion(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read libtorch version: %w", err)
	}
	parts := map[string]string{}
	for _, m := range versionRe.FindAllSubmatch(b, -1) {
		parts[string(m[1])] = string(m[2])
	}
	if len(parts) != 3 {
		return "", fmt.Errorf("read libtorch version: %s has no TORCH_VERSION_MAJOR/MINOR/PATCH", path)
	}
	return parts["MAJOR"] + "." + parts["MINOR"] + "." + parts["PATCH"], nil
}

// usesCXX11ABI tells whether a library was built with the new std::string
// ABI: its mangled names then mention std::__cxx11. Headers must be compiled
// with the matching _GLIBCXX_USE_CXX11_ABI or linking fails on string symbols.
func usesCXX11ABI(lib string) (bool, error) {
	b, err := os.ReadFile(lib)
	if err != nil {
		return false, fmt.Errorf("inspect %s: %w", lib, err)
	}
	return bytes.Contains(b, []byte("__cxx11")), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
