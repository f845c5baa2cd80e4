package gotchadapt

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// GotchModule is the module path that the generated go.work replaces.
const GotchModule = "github.com/sugarme/gotch"

// adapterRevision changes whenever the adapter's output changes for the same
// inputs, so that a stale adapted copy is rebuilt rather than reused.
const adapterRevision = "12"

// wrapperFiles are gotch's C++ sources, relative to its libtch folder; the
// first is the translation unit, which includes the others.
var wrapperFiles = []string{"torch_api.cpp", "torch_api_generated.cpp.h"}

// Options configures one adaptation.
type Options struct {
	GotchVersion string   // e.g. "v0.8.0"
	Libtorch     Libtorch // from Detect
	OutDir       string   // where the adapted copy goes, e.g. ".build/gotch"
	WorkFile     string   // the go.work to write, e.g. "go.work"
	CXX          string   // C++ compiler; "" means $CXX or g++
	Logger       *slog.Logger
}

// Result reports what an adaptation did.
type Result struct {
	Dir      string   // the adapted copy
	Stubbed  []string // wrapper functions replaced by stubs
	UpToDate bool     // nothing had to be done
}

// stamp records the inputs of an adapted copy; an equal stamp means reuse.
type stamp struct {
	Adapter  string   `json:"adapter"`
	Gotch    string   `json:"gotch"`
	Libtorch Libtorch `json:"libtorch"`
	Stubbed  []string `json:"stubbed"`
}

const stampFile = ".xling-adapted.json"

// Adapt produces the adapted gotch copy and the go.work that uses it. It is
// idempotent: when the copy was made from the same inputs it only rewrites
// go.work.
func Adapt(ctx context.Context, opts Options) (Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	want := stamp{Adapter: adapterRevision, Gotch: opts.GotchVersion, Libtorch: opts.Libtorch}
	if have, err := readStamp(opts.OutDir); err == nil && have.sameInputs(want) {
		if err := writeWorkFile(opts.WorkFile, opts.OutDir, opts.GotchVersion); err != nil {
			return Result{}, err
		}
		return Result{Dir: opts.OutDir, Stubbed: have.Stubbed, UpToDate: true}, nil
	}

	src, err := moduleDir(ctx, opts.GotchVersion)
	if err != nil {
		return Result{}, err
	}
	tmp := opts.OutDir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return Result{}, fmt.Errorf("clear %s: %w", tmp, err)
	}
	log.Info("copying gotch", "from", src, "to", opts.OutDir)
	if err := copyTree(src, tmp); err != nil {
		return Result{}, fmt.Errorf("copy gotch from %s: %w", src, err)
	}
	libtch := filepath.Join(tmp, "libtch")
	if err := os.WriteFile(filepath.Join(libtch, "lib.go"), []byte(cgoFile(opts.Libtorch)), 0o644); err != nil {
		return Result{}, fmt.Errorf("write cgo flags: %w", err)
	}
	if err := appendVersionFunc(filepath.Join(libtch, wrapperFiles[0])); err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(filepath.Join(libtch, "xling_c10d.cpp"), c10dSource, 0o644); err != nil {
		return Result{}, fmt.Errorf("write the c10d layer: %w", err)
	}
	if err := patchGo(filepath.Join(tmp, "ts", "tensor-generated.go"), outputBufferFixes); err != nil {
		return Result{}, err
	}
	if err := patchGo(filepath.Join(tmp, "ts", "scalar.go"), scalarDropFix); err != nil {
		return Result{}, err
	}
	if err := patchGo(filepath.Join(tmp, "ts", "tensor.go"), tensorFixes); err != nil {
		return Result{}, err
	}
	if err := panicInsteadOfExit(filepath.Join(tmp, "ts")); err != nil {
		return Result{}, err
	}
	stubbed, err := stubUntilItCompiles(ctx, libtch, opts, log)
	if err != nil {
		return Result{}, err
	}
	want.Stubbed = stubbed
	b, _ := json.MarshalIndent(want, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, stampFile), b, 0o644); err != nil {
		return Result{}, fmt.Errorf("write stamp: %w", err)
	}
	if err := os.RemoveAll(opts.OutDir); err != nil {
		return Result{}, fmt.Errorf("replace %s: %w", opts.OutDir, err)
	}
	if err := os.Rename(tmp, opts.OutDir); err != nil {
		return Result{}, fmt.Errorf("replace %s: %w", opts.OutDir, err)
	}
	if err := writeWorkFile(opts.WorkFile, opts.OutDir, opts.GotchVersion); err != nil {
		return Result{}, err
	}
	return Result{Dir: opts.OutDir, Stubbed: stubbed}, nil
}

// c10dSource is xling's c10d layer (see internal/c10d), compiled with
// gotch's wrapper because it needs the same libtorch flags.
//
//go:embed xling_c10d.cpp.in
var c10dSource []byte

// versionFunc lets Go ask which libtorch the wrapper was compiled against;
// gotch exposes no such thing.
const versionFunc = `
// Added by xling's gotchadapt.
#include <torch/version.h>
extern "C" const char *xling_torch_version() { return TORCH_VERSION; }

// Dynamic int8 linear layers, as torch.ao.quantization.quantize_dynamic
// makes them (see torchx.QLinear): the weight quantised per tensor,
// symmetrically (MinMaxObserver, qint8: scale max|w|/127.5, zero point 0),
// packed by quantized::linear_prepack, applied by quantized::linear_dynamic
// with reduce_range, as nn.quantized.dynamic.Linear does. gotch wraps none
// of this: the quantized ops are reached through the dispatcher.
#include <ATen/native/quantized/PackedParams.h>
#include <ATen/core/dispatch/Dispatcher.h>
static thread_local std::string xling_q_err;
extern "C" const char *xling_q_error() { return xling_q_err.c_str(); }
extern "C" int xling_q_use_engine(const char *name) {
  try {
    std::string n(name);
    at::QEngine e = n == "onednn" ? at::QEngine::ONEDNN : n == "qnnpack" ? at::QEngine::QNNPACK : n == "fbgemm" ? at::QEngine::FBGEMM : at::QEngine::NoQEngine;
    for (auto s : at::globalContext().supportedQEngines()) {
      if (s == e) { at::globalContext().setQEngine(e); return 1; }
    }
    xling_q_err = "quantized engine " + n + " is not in this libtorch";
  } catch (const std::exception &ex) { xling_q_err = ex.what(); }
  return 0;
}
extern "C" void *xling_q_prepack(torch::Tensor *w, torch::Tensor *b) {
  try {
    torch::NoGradGuard no_grad;
    at::Tensor weight = w->contiguous().to(at::kFloat);
    auto eps = at::full({}, std::numeric_limits<float>::epsilon());
    auto scale = at::maximum(weight.abs().max() / 127.5, eps).item<float>();
    auto qweight = at::quantize_per_tensor(weight, scale, 0, at::kQInt8);
    static auto prepack = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "")
      .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
    c10::optional<at::Tensor> bias;
    if (b) bias = b->contiguous().to(at::kFloat);
    return new c10::intrusive_ptr<LinearPackedParamsBase>(prepack.call(qweight, bias));
  } catch (const std::exception &ex) { xling_q_err = ex.what(); return nullptr; }
}
extern "C" torch::Tensor *xling_q_linear(torch::Tensor *x, void *packed) {
  try {
    static auto linear = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_dynamic", "")
      .typed<at::Tensor(at::Tensor, const c10::intrusive_ptr<LinearPackedParamsBase> &, bool)>();
    return new torch::Tensor(linear.call(*x, *static_cast<c10::intrusive_ptr<LinearPackedParamsBase> *>(packed), true));
  } catch (const std::exception &ex) { xling_q_err = ex.what(); return nullptr; }
}
extern "C" void xling_q_free(void *packed) { delete static_cast<c10::intrusive_ptr<LinearPackedParamsBase> *>(packed); }
`

func appendVersionFunc(path string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("extend %s: %w", path, err)
	}
	if _, err := f.WriteString(versionFunc); err != nil {
		f.Close()
		return fmt.Errorf("extend %s: %w", path, err)
	}
	return f.Close()
}

// gotch's generated Go passes the C wrapper a malloc(0) buffer for the
// output tensor pointers and never frees it: every tensor operation leaked a
// chunk (measured: 153 bytes per matmul, so RSS grew ~10 MB per 10,000
// encodes), and functions with several outputs wrote past the buffer. The
// replacement holds 32 pointers, more than any wrapper writes, and is freed
// when the function returns, after the pointers have been read.
var outputBufferFixes = map[string]string{
	"  ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))\n":         "  ptr := (*lib.Ctensor)(C.malloc(C.size_t(32 * unsafe.Sizeof(uintptr(0)))))\n  defer C.free(unsafe.Pointer(ptr))\n",
	"  ctensorPtr0 := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))\n": "  ctensorPtr0 := (*lib.Ctensor)(C.malloc(C.size_t(32 * unsafe.Sizeof(uintptr(0)))))\n  defer C.free(unsafe.Pointer(ctensorPtr0))\n",
}

// gotch v0.8.0's Scalar.Drop does nothing and leaves the C scalar to a
// finaliser, so a loop that makes scalars grows memory between collections
// (measured: 101 bytes per scalar that a GC did not give back).
var scalarDropFix = map[string]string{
	"func (sc *Scalar) Drop() (err error) {\n\t// TODO. FIXME either remove or rewind for specific scenario\n\treturn nil\n": "func (sc *Scalar) Drop() (err error) {\n\tif sc == nil || sc.cscalar == nil {\n\t\treturn nil\n\t}\n\truntime.SetFinalizer(sc, nil)\n\terr = freeCScalar(sc)\n\tsc.cscalar = nil\n\treturn err\n",
	"func (sc *Scalar) MustDrop() {\n\t// TODO. FIXME either remove or rewind for specific scenario\n\treturn\n":             "func (sc *Scalar) MustDrop() {\n\tif err := sc.Drop(); err != nil {\n\t\tpanic(err)\n\t}\n",
}

// gotch v0.8.0 gives every tensor a 100 KB Go allocation as ballast, so that
// Go's collector feels the C memory and runs the finalisers. xling frees
// tensors itself; the ballast only cost time: 19 µs per operation against
// PyTorch's 1.1 µs, most of it zeroing and scanning the ballast.
//
// gotch also names every tensor, uniquely, in a registry that its free
// consults; on a name collision it appends TensorCount, read after its
// atomic increment, so two threads creating tensors at once could both get
// the same name, and the second free found the name gone and skipped
// freeing the tensor ("Probably double free"): a leak once forward passes
// ran on several threads. The count each creation takes is used instead.
var tensorFixes = map[string]string{
	"\tx.d = new(bigStruct)\n":                                 "",
	"\tatomic.AddInt64(&TensorCount, 1)\n":                     "\tcount := atomic.AddInt64(&TensorCount, 1)\n",
	"\t\tname = fmt.Sprintf(\"%s_%09d\", name, TensorCount)\n": "\t\tname = fmt.Sprintf(\"%s_%09d\", name, count)\n",
}

// patchGo applies exact replacements to one of gotch's Go files, failing
// loudly if gotch changed so that a replacement no longer applies.
func patchGo(path string, fixes map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("patch gotch: %w", err)
	}
	s := string(b)
	for old, fixed := range fixes {
		if !strings.Contains(s, old) {
			return fmt.Errorf("patch gotch: %s no longer contains %q: check the adapter against this gotch version", path, strings.TrimSpace(old))
		}
		s = strings.ReplaceAll(s, old, fixed)
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// gotch's Must* functions call log.Fatal on a libtorch error, so one bad
// input (an index out of range, say) ended the process from inside a
// server. Go's convention for Must is a panic, which the caller's worker
// recovers into an error for that request alone.
func panicInsteadOfExit(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("patch gotch: %w", err)
		}
		s := strings.ReplaceAll(string(b), "log.Fatal(err)", "panic(err)")
		if !strings.Contains(s, "log.") {
			// The import would be unused; a blank import keeps the file valid.
			s = strings.Replace(s, "\"log\"\n", "_ \"log\"\n", 1)
		}
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			return fmt.Errorf("patch gotch: %w", err)
		}
	}
	return nil
}

func (s stamp) sameInputs(o stamp) bool {
	a, _ := json.Marshal(stamp{Adapter: s.Adapter, Gotch: s.Gotch, Libtorch: s.Libtorch})
	b, _ := json.Marshal(stamp{Adapter: o.Adapter, Gotch: o.Gotch, Libtorch: o.Libtorch})
	return bytes.Equal(a, b)
}

func readStamp(dir string) (stamp, error) {
	var s stamp
	b, err := os.ReadFile(filepath.Join(dir, stampFile))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// stubUntilItCompiles runs a syntax-only compile of the wrapper, stubs every
// function the compiler blames and repeats until the wrapper compiles. Errors
// that fall outside any wrapper function cannot be stubbed and are returned.
func stubUntilItCompiles(ctx context.Context, libtch string, opts Options, log *slog.Logger) ([]string, error) {
	var all []string
	for round := 1; round <= 4; round++ {
		start := time.Now()
		log.Info("checking gotch's C++ wrapper against libtorch", "libtorch", opts.Libtorch.Version, "round", round)
		out, ok, err := syntaxCheck(ctx, libtch, opts)
		if err != nil {
			return nil, err
		}
		log.Info("checked", "seconds", time.Since(start).Round(time.Second).Seconds(), "compiles", ok)
		if ok {
			sort.Strings(all)
			return all, nil
		}
		blamed := failingLines(out, wrapperFiles)
		if len(blamed) == 0 {
			return nil, fmt.Errorf("gotch's wrapper does not compile against libtorch %s and no error points into it:\n%s", opts.Libtorch.Version, tail(out, 40))
		}
		for _, name := range wrapperFiles {
			lines := blamed[name]
			if len(lines) == 0 {
				continue
			}
			path := filepath.Join(libtch, name)
			src, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			names, orphans := functionsAt(src, lines)
			if len(orphans) > 0 {
				return nil, fmt.Errorf("gotch's %s fails to compile outside any function (lines %v):\n%s", name, orphans, tail(out, 40))
			}
			fixed, stubbed := stubFunctions(src, names)
			if err := os.WriteFile(path, fixed, 0o644); err != nil {
				return nil, err
			}
			log.Info("stubbed wrappers this libtorch lacks", "file", name, "count", len(stubbed))
			all = append(all, stubbed...)
		}
	}
	return nil, fmt.Errorf("gotch's wrapper still fails to compile after 4 rounds of stubbing")
}

// syntaxCheck compiles the wrapper without generating code: a third of the
// time of a real build, and its diagnostics name every failing line.
func syntaxCheck(ctx context.Context, libtch string, opts Options) (output []byte, ok bool, err error) {
	cxx := opts.CXX
	if cxx == "" {
		cxx = os.Getenv("CXX")
	}
	if cxx == "" {
		cxx = "g++"
	}
	args := []string{"-std=c++17", "-fsyntax-only", "-w", "-fmax-errors=0", "-I."}
	args = append(args, cxxFlags(opts.Libtorch)...)
	args = append(args, wrapperFiles[0])
	cmd := exec.CommandContext(ctx, cxx, args...)
	cmd.Dir = libtch
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, true, nil
	case errors.As(err, &exit):
		return out, false, nil
	default:
		return nil, false, fmt.Errorf("run the C++ compiler %q: %w (install g++, or set CXX)", cxx, err)
	}
}

func cxxFlags(lt Libtorch) []string {
	var f []string
	for _, d := range lt.IncludeDirs {
		f = append(f, "-I"+d)
	}
	abi := "0"
	if lt.CXX11ABI {
		abi = "1"
	}
	return append(f, "-D_GLIBCXX_USE_CXX11_ABI="+abi)
}

// cgoFile is the replacement for gotch's libtch/lib.go, whose flags name a
// bundled libtorch and always link CUDA.
func cgoFile(lt Libtorch) string {
	var b strings.Builder
	b.WriteString("// Code generated by xling's gotchadapt for libtorch " + lt.Version + "; DO NOT EDIT.\n\n")
	b.WriteString("package libtch\n\n")
	ld := "-lstdc++ -L" + lt.LibDir + " -Wl,-rpath," + lt.LibDir
	if lt.CUDA {
		// Linked even though nothing references them directly: loading
		// libtorch_cuda registers the CUDA backend.
		ld += " -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed"
	}
	ld += " -ltorch -ltorch_cpu -lc10"
	fmt.Fprintf(&b, "// #cgo LDFLAGS: %s\n", ld)
	fmt.Fprintf(&b, "// #cgo CFLAGS: -I${SRCDIR} -O3 -Wall -Wno-unused-variable -Wno-deprecated-declarations -Wno-sign-compare -Wno-unused-function\n")
	fmt.Fprintf(&b, "// #cgo CXXFLAGS: -std=c++17 -I${SRCDIR} -O3 -w %s\n", strings.Join(cxxFlags(lt), " "))
	b.WriteString("import \"C\"\n")
	return b.String()
}

// moduleDir downloads (if needed) a gotch version into the module cache and
// returns its directory there.
func moduleDir(ctx context.Context, version string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", GotchModule+"@"+version)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	_ = json.Unmarshal(stdout.Bytes(), &info)
	if runErr != nil || info.Error != "" || info.Dir == "" {
		msg := strings.TrimSpace(info.Error + " " + stderr.String())
		if strings.Contains(msg, "permission denied") || strings.Contains(msg, "read-only file system") || strings.Contains(msg, "not a directory") {
			return "", fmt.Errorf("download %s@%s: the Go module cache is not writable (%s); set GOMODCACHE to a writable directory, e.g. GOMODCACHE=$HOME/go/pkg/mod", GotchModule, version, msg)
		}
		return "", fmt.Errorf("download %s@%s: %s", GotchModule, version, strings.TrimSpace(msg+" "+errString(runErr)))
	}
	return info.Dir, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// writeWorkFile points the main module's build at the adapted copy.
func writeWorkFile(path, dir, version string) error {
	rel, err := filepath.Rel(filepath.Dir(path), dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	body := fmt.Sprintf("// Generated by make deps: builds against gotch adapted to the local libtorch.\ngo 1.26.8\n\nuse .\n\nreplace %s %s => ./%s\n", GotchModule, version, filepath.ToSlash(rel))
	if old, err := os.ReadFile(path); err == nil && string(old) == body {
		return nil
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// copyTree copies a directory, making the copies writable: the module cache
// holds read-only files.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// String summarises a Libtorch for logs.
func (lt Libtorch) String() string {
	where := lt.Root
	if where == "" {
		where = "Debian's libtorch-dev"
	}
	return fmt.Sprintf("libtorch %s from %s (lib %s, cuda=%t, cxx11abi=%t)", lt.Version, where, lt.LibDir, lt.CUDA, lt.CXX11ABI)
}
