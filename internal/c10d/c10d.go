//go:build cgo

// Package c10d joins a process to a group of training processes on
// libtorch's own distributed runtime: rendezvous through c10d's TCPStore,
// collectives on its Gloo process group (the engine under PyTorch DDP and
// torchrun), reached through a small C layer that gotchadapt compiles beside
// gotch's wrapper.
//
// A group is configured as torchrun configures its workers (see FromEnv), so
// a Kubeflow PyTorchJob or any torchrun-style launcher starts xling
// unchanged. A collective that fails or times out leaves the group unusable:
// the error names the ranks that stopped (see Group.explain) and the process
// is expected to exit, as every rank then does.
package c10d

// #include <stdlib.h>
// const char *xling_dist_error();
// void *xling_dist_new(const char *host, int port, int rank, int world, long long timeout_ms, int device, const char *device_name, int threads);
// void xling_dist_free(void *h);
// int xling_dist_allreduce(void *h, void *data, long long n, int dtype);
// int xling_dist_allgather(void *h, void *in, void *out, long long n, int dtype);
// int xling_dist_broadcast(void *h, void *data, long long n, int dtype, int root);
// int xling_dist_barrier(void *h);
// int xling_dist_store_set(void *h, const char *key, const void *value, long long n);
// int xling_dist_store_get(void *h, const char *key, void **value, long long *n);
// int xling_dist_store_check(void *h, const char *key, int *present);
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	_ "github.com/sugarme/gotch/libtch" // holds the C layer
)

// Available says whether this build has the c10d layer.
const Available = true

// element types the C layer knows, by its codes.
type element interface {
	~float32 | ~float64 | ~int64 | ~byte
}

func dtypeOf[T element]() C.int {
	var z T
	switch any(z).(type) {
	case float32:
		return 0
	case int64:
		return 1
	case float64:
		return 3
	}
	return 2
}

// Group is this process's membership of a process group.
type Group struct {
	h      unsafe.Pointer
	cfg    Config
	log    *slog.Logger
	mu     sync.Mutex // the handle, against Close during a heartbeat
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// Join performs the rendezvous and returns the group once every rank has
// joined, or an error after cfg.Timeout. Rank 0 hosts the TCPStore.
func Join(ctx context.Context, cfg Config, log *slog.Logger) (*Group, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Backend == BackendNCCL {
		return nil, errors.New("c10d: backend nccl needs a libtorch built with CUDA and NCCL; this one (Debian's libtorch, CPU) has neither: use gloo")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kind, name := cfg.device()
	host, dev := C.CString(cfg.MasterAddr), C.CString(name)
	defer C.free(unsafe.Pointer(host))
	defer C.free(unsafe.Pointer(dev))
	log.Info("c10d: joining", "rank", cfg.Rank, "world_size", cfg.WorldSize, "master", net.JoinHostPort(cfg.MasterAddr, fmt.Sprint(cfg.MasterPort)), "timeout", cfg.Timeout)
	type result struct {
		h   unsafe.Pointer
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The rendezvous blocks in C++ for up to the timeout; a cancelled
		// context returns at once and the process is expected to exit.
		h := C.xling_dist_new(host, C.int(cfg.MasterPort), C.int(cfg.Rank), C.int(cfg.WorldSize), C.longlong(cfg.Timeout.Milliseconds()), C.int(kind), dev, C.int(cfg.gloThreads()))
		if h == nil {
			ch <- result{err: fmt.Errorf("c10d: rank %d of %d could not join through %s within %s: %s", cfg.Rank, cfg.WorldSize, net.JoinHostPort(cfg.MasterAddr, fmt.Sprint(cfg.MasterPort)), cfg.Timeout, lastError())}
			return
		}
		ch <- result{h: h}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	g := &Group{h: r.h, cfg: cfg, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go g.heartbeat()
	return g, nil
}

func lastError() string { return C.GoString(C.xling_dist_error()) }

// Rank is this process's rank.
func (g *Group) Rank() int { return g.cfg.Rank }

// Size is the number of processes in the group.
func (g *Group) Size() int { return g.cfg.WorldSize }

// Close leaves the group. Every rank should reach a Barrier first: rank 0
// hosts the store the others still read.
func (g *Group) Close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	close(g.stop)
	g.mu.Unlock()
	<-g.done
	g.mu.Lock()
	C.xling_dist_free(g.h)
	g.h = nil
	g.mu.Unlock()
}

// AllReduce sums x across the group, in place.
func AllReduce[T element](g *Group, op string, x []T) error {
	if len(x) == 0 {
		return nil
	}
	ok := C.xling_dist_allreduce(g.h, unsafe.Pointer(&x[0]), C.longlong(len(x)), dtypeOf[T]())
	runtime.KeepAlive(x)
	return g.check(ok, "allreduce", op)
}

// AllGather returns every rank's x (each the same length) in rank order.
func AllGather[T element](g *Group, op string, x []T) ([]T, error) {
	out := make([]T, len(x)*g.cfg.WorldSize)
	if len(x) == 0 {
		return out, g.Barrier(op)
	}
	ok := C.xling_dist_allgather(g.h, unsafe.Pointer(&x[0]), unsafe.Pointer(&out[0]), C.longlong(len(x)), dtypeOf[T]())
	runtime.KeepAlive(x)
	return out, g.check(ok, "allgather", op)
}

// AllGatherV gathers rows of width values whose count differs by rank: it
// returns every rank's rows concatenated in rank order, and the row each
// rank's part starts at (len Size()+1, the last being the total).
func AllGatherV[T element](g *Group, op string, x []T, width int) ([]T, []int, error) {
	counts, err := AllGather(g, op+" (counts)", []int64{int64(len(x) / max(width, 1))})
	if err != nil {
		return nil, nil, err
	}
	offsets := make([]int, len(counts)+1)
	most := int64(0)
	for r, c := range counts {
		offsets[r+1] = offsets[r] + int(c)
		most = max(most, c)
	}
	padded := make([]T, int(most)*width)
	copy(padded, x)
	all, err := AllGather(g, op, padded)
	if err != nil {
		return nil, nil, err
	}
	out := make([]T, 0, offsets[len(counts)]*width)
	for r, c := range counts {
		start := r * int(most) * width
		out = append(out, all[start:start+int(c)*width]...)
	}
	return out, offsets, nil
}

// Broadcast copies root's x into every rank's x (each the same length).
func Broadcast[T element](g *Group, op string, x []T, root int) error {
	if len(x) == 0 {
		return nil
	}
	ok := C.xling_dist_broadcast(g.h, unsafe.Pointer(&x[0]), C.longlong(len(x)), dtypeOf[T](), C.int(root))
	runtime.KeepAlive(x)
	return g.check(ok, "broadcast", op)
}

// BroadcastBytes returns root's b on every rank, whatever its length.
func (g *Group) BroadcastBytes(op string, b []byte, root int) ([]byte, error) {
	n := []int64{int64(len(b))}
	if err := Broadcast(g, op+" (length)", n, root); err != nil {
		return nil, err
	}
	out := make([]byte, n[0])
	if g.cfg.Rank == root {
		copy(out, b)
	}
	return out, Broadcast(g, op, out, root)
}

// Barrier returns once every rank has reached it.
func (g *Group) Barrier(op string) error {
	return g.check(C.xling_dist_barrier(g.h), "barrier", op)
}

// check turns a failed collective into an error naming the ranks that
// stopped, when the store can tell.
func (g *Group) check(ok C.int, collective, op string) error {
	if ok != 0 {
		return nil
	}
	cause := lastError()
	return fmt.Errorf("c10d: %s (%s) failed: %s%s", collective, op, strings.TrimSpace(cause), g.explain())
}

// set and get are the store's, for this package's own keys.
func (g *Group) set(key string, value []byte) error {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var p unsafe.Pointer
	if len(value) > 0 {
		p = C.CBytes(value)
		defer C.free(p)
	}
	if C.xling_dist_store_set(g.h, k, p, C.longlong(len(value))) == 0 {
		return fmt.Errorf("c10d store: set %s: %s", key, lastError())
	}
	return nil
}

// lookup returns key's value, or false if it is not set; it never waits.
func (g *Group) lookup(key string) ([]byte, bool, error) {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var present C.int
	if C.xling_dist_store_check(g.h, k, &present) == 0 {
		return nil, false, fmt.Errorf("c10d store: check %s: %s", key, lastError())
	}
	if present == 0 {
		return nil, false, nil
	}
	var p unsafe.Pointer
	var n C.longlong
	if C.xling_dist_store_get(g.h, k, &p, &n) == 0 {
		return nil, false, fmt.Errorf("c10d store: get %s: %s", key, lastError())
	}
	defer C.free(p)
	return C.GoBytes(p, C.int(n)), true, nil
}

// storeAddr is where rank 0's store listens.
func (g *Group) storeAddr() string {
	return net.JoinHostPort(g.cfg.MasterAddr, fmt.Sprint(g.cfg.MasterPort))
}

// sleep waits d unless the group is closing.
func (g *Group) sleep(d time.Duration) bool {
	select {
	case <-g.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// SumFloat32 sums x across the group, in place.
func (g *Group) SumFloat32(op string, x []float32) error { return AllReduce(g, op, x) }

// SumFloat64 sums x across the group, in place.
func (g *Group) SumFloat64(op string, x []float64) error { return AllReduce(g, op, x) }

// GatherFloat32 is AllGatherV for float32 rows.
func (g *Group) GatherFloat32(op string, x []float32, width int) ([]float32, []int, error) {
	return AllGatherV(g, op, x, width)
}

// GatherInt64 is AllGatherV for int64 values.
func (g *Group) GatherInt64(op string, x []int64) ([]int64, []int, error) {
	return AllGatherV(g, op, x, 1)
}

// BroadcastFloat32 copies root's x into every rank's x.
func (g *Group) BroadcastFloat32(op string, x []float32, root int) error {
	return Broadcast(g, op, x, root)
}
