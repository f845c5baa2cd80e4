// Package torchrun starts the workers of a data-parallel run on one
// machine, as PyTorch's torchrun --standalone does: N copies of a command,
// each told its place by torchrun's variables (WORLD_SIZE, RANK,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT), their output prefixed by rank.
package torchrun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configures a launch.
type Options struct {
	NProc int      // workers to start
	Path  string   // the program
	Args  []string // its arguments
	Env   []string // extra variables for every worker
	// Output receives the workers' stdout and stderr, each line prefixed
	// with "[rank N] ".
	Output io.Writer
	// Grace is how long the others may take to exit on their own once one
	// worker has failed (they notice through c10d and name it), before
	// they are killed.
	Grace  time.Duration
	Logger *slog.Logger
}

// worker is one started process.
type worker struct {
	rank   int
	cmd    *exec.Cmd
	err    error // its exit, set before it is sent on exited
	exited bool  // seen by Run's loop, which alone reads and writes it
}

// Run starts the workers and waits for them. It fails, naming the ranks,
// if any worker fails; cancelling ctx interrupts every worker (SIGINT, as a
// terminal's Ctrl-C would) and kills those still running after Grace.
func Run(ctx context.Context, o Options) error {
	if o.NProc < 1 {
		return fmt.Errorf("torchrun: --nproc %d: want at least 1", o.NProc)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("torchrun: pick a rendezvous port: %w", err)
	}
	var out sync.Mutex // whole lines from different workers do not interleave
	workers := make([]*worker, o.NProc)
	exited := make(chan *worker, o.NProc)
	var pipes sync.WaitGroup
	for rank := range workers {
		cmd := exec.Command(o.Path, o.Args...)
		cmd.Env = append(append(os.Environ(), o.Env...),
			"WORLD_SIZE="+strconv.Itoa(o.NProc), "RANK="+strconv.Itoa(rank), "LOCAL_RANK="+strconv.Itoa(rank),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		r, w := io.Pipe()
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Start(); err != nil {
			stopAll(workers[:rank], syscall.SIGKILL)
			return fmt.Errorf("torchrun: start rank %d: %w", rank, err)
		}
		log.Info("torchrun: started", "rank", rank, "pid", cmd.Process.Pid)
		wk := &worker{rank: rank, cmd: cmd}
		workers[rank] = wk
		pipes.Add(1)
		go func() {
			defer pipes.Done()
			prefix(r, o.Output, fmt.Sprintf("[rank %d] ", rank), &out)
		}()
		go func() {
			wk.err = cmd.Wait()
			w.Close()
			exited <- wk
		}()
	}
	var failed []string
	deadline := (<-chan time.Time)(nil)
	interrupted := false
	for running := len(workers); running > 0; {
		select {
		case wk := <-exited:
			running--
			wk.exited = true
			if wk.err != nil {
				failed = append(failed, fmt.Sprintf("rank %d (pid %d): %v", wk.rank, wk.cmd.Process.Pid, wk.err))
				if deadline == nil {
					deadline = time.After(o.Grace)
				}
			}
		case <-ctx.Done():
			if !interrupted {
				interrupted = true
				stopAll(workers, os.Interrupt)
				deadline = time.After(o.Grace)
			}
		case <-deadline:
			log.Warn("torchrun: workers still running after the grace period: killing them", "grace", o.Grace)
			stopAll(workers, syscall.SIGKILL)
			deadline = nil
		}
	}
	pipes.Wait()
	switch {
	case len(failed) > 0:
		return fmt.Errorf("torchrun: %d of %d workers failed: %s", len(failed), len(workers), strings.Join(failed, "; "))
	case interrupted:
		return ctx.Err()
	}
	return nil
}

// stopAll signals the workers that have not exited.
func stopAll(workers []*worker, sig os.Signal) {
	for _, wk := range workers {
		if wk != nil && !wk.exited {
			_ = wk.cmd.Process.Signal(sig)
		}
	}
}

// prefix copies r to w line by line, each line prefixed.
func prefix(r io.Reader, w io.Writer, p string, mu *sync.Mutex) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mu.Lock()
		fmt.Fprintf(w, "%s%s\n", p, sc.Text())
		mu.Unlock()
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		io.Copy(io.Discard, r) // keep the worker from blocking on a full pipe
	}
}

// freePort asks the kernel for a free TCP port on loopback. Another
// process could take it before rank 0 listens; the rendezvous then fails
// with an error naming the address.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
