// Package torchx holds the few libtorch facilities that gotch v0.8.0 does not
// expose to Go, and the discipline xling uses to keep tensor memory flat.
package torchx

/*
// tcmalloc serves every malloc of the process, libtorch's tensors included
// (see Allocator).
#cgo LDFLAGS: -ldl -l:libtcmalloc_minimal.so.4
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <stdint.h>
// Defined in gotch's libtch wrapper, which is linked into every binary that
// imports gotch; gotch declares them in C but never binds them in Go.
void at_manual_seed(int64_t seed);
void at_set_num_threads(int n);
int at_get_num_threads();
// Appended to gotch's wrapper by gotchadapt.
const char *xling_torch_version();

// OpenBLAS keeps its own thread pool, one thread per core, which libtorch's
// set_num_threads does not touch. It is already loaded (through libtorch's
// libblas.so.3), so RTLD_NOLOAD finds it without loading anything.
static int xling_set_blas_threads(int n) {
	const char *names[] = {"libblas.so.3", "libopenblas.so.0", NULL};
	for (int i = 0; names[i]; i++) {
		void *h = dlopen(names[i], RTLD_NOW | RTLD_NOLOAD);
		if (!h) continue;
		void (*set)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
		if (set) { set(n); return 1; }
	}
	return 0;
}

// The file of the library that provides malloc.
static const char *xling_malloc_library() {
	Dl_info info;
	if (dladdr((void *)malloc, &info) && info.dli_fname) return info.dli_fname;
	return "";
}
*/
import "C"

import (
	"runtime"

	"github.com/sugarme/gotch/ts"
)

// Allocator is the library that serves malloc. It is tcmalloc (linked by
// this package): under a server's ever-changing batch shapes, glibc's heap
// fragmented and resident memory grew ~80 MB a minute although nothing
// leaked, and the fix inside glibc (a fixed 128 KiB mmap threshold) made
// every tensor an mmap/munmap pair and halved the encoder's speed. tcmalloc,
// as PyTorch deployments commonly preload it, keeps both flat and fast.
func Allocator() string { return C.GoString(C.xling_malloc_library()) }

// Version reports the libtorch version the wrapper was compiled against.
func Version() string { return C.GoString(C.xling_torch_version()) }

// SetThreads sets the number of threads libtorch uses for intra-op work,
// and OpenBLAS's pool (which would otherwise use every core) to the same;
// n <= 0 means one per CPU. It applies to the calling OS thread's libtorch
// work: call it on the locked thread that runs the model.
func SetThreads(n int) {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	C.at_set_num_threads(C.int(n))
	C.xling_set_blas_threads(C.int(n))
}

// Threads reports the number of threads libtorch uses for intra-op work.
func Threads() int { return int(C.at_get_num_threads()) }

// ManualSeed seeds libtorch's global random generator (initialisers, dropout).
func ManualSeed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }

// Arena collects the intermediate tensors of one step so they can be freed
// together: gotch v0.8.0 does not garbage-collect tensors, and dropping each
// one by hand is easy to get wrong.
type Arena struct {
	held    []*ts.Tensor
	scalars []*ts.Scalar
}

// Keep records t for the next Free and returns it.
func (a *Arena) Keep(t *ts.Tensor) *ts.Tensor {
	a.held = append(a.held, t)
	return t
}

// KeepScalar records s for the next Free and returns it.
func (a *Arena) KeepScalar(s *ts.Scalar) *ts.Scalar {
	a.scalars = append(a.scalars, s)
	return s
}

// Len reports how many tensors the arena holds.
func (a *Arena) Len() int { return len(a.held) }

// Free drops every tensor the arena holds.
func (a *Arena) Free() {
	for _, t := range a.held {
		t.MustDrop()
	}
	for _, s := range a.scalars {
		s.MustDrop()
	}
	a.held, a.scalars = a.held[:0], a.scalars[:0]
}
