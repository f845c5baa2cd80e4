package trainer

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Group is the process group of a data-parallel run (internal/c10d.Group
// on libtorch's c10d). Every rank draws the same global batch from the same
// sampler and takes a contiguous share of it; embeddings are gathered so
// that the loss and its in-batch negatives span the global batch; gradients
// are summed; every rank then applies the same update. Rank 0 alone writes
// checkpoints, validation and exports.
type Group interface {
	Rank() int
	Size() int
	SumFloat32(op string, x []float32) error
	SumFloat64(op string, x []float64) error
	// GatherFloat32 and GatherInt64 return every rank's rows in rank order
	// and the row each rank's part starts at (the last entry is the total).
	GatherFloat32(op string, x []float32, width int) ([]float32, []int, error)
	GatherInt64(op string, x []int64) ([]int64, []int, error)
	BroadcastFloat32(op string, x []float32, root int) error
	BroadcastBytes(op string, b []byte, root int) ([]byte, error)
	Barrier(op string) error
	// Progress publishes the step a rank is at, for failure reports.
	Progress(step int)
}

// bucketFloats is how many gradient values one all-reduce carries: DDP's
// default bucket of 25 MiB.
const bucketFloats = 25 << 20 / 4

// shard is rank's contiguous share of a global batch: sizes differ by at
// most one, and the shares concatenated in rank order are the batch, so the
// gathered embeddings line up with a single process's.
func shard(batch []Pair, rank, size int) []Pair {
	n := len(batch)
	return batch[rank*n/size : (rank+1)*n/size]
}

// peers gathers one step's embeddings across a group; a nil *peers is a
// process training alone, whose rows are all there is.
type peers struct{ g Group }

// gather returns the rows (width values each) of every rank, and where this
// rank's start and end among them.
func (p *peers) gather(op string, local []float32, width int) (all []float32, start, end int, err error) {
	if p == nil {
		return local, 0, len(local) / width, nil
	}
	all, offsets, err := p.g.GatherFloat32(op, local, width)
	if err != nil {
		return nil, 0, 0, err
	}
	r := p.g.Rank()
	return all, offsets[r], offsets[r+1], nil
}

// sumRows sums a static gradient's rows over the union of the rows any rank
// touched, so that each rank then holds the global batch's gradient.
func sumRows(g Group, rows map[int64][]float64, dense [][]float64, width int) (map[int64][]float64, error) {
	local := make([]int64, 0, len(rows))
	for id := range rows {
		local = append(local, id)
	}
	all, _, err := g.GatherInt64("static rows touched", local)
	if err != nil {
		return nil, err
	}
	slices.Sort(all)
	union := slices.Compact(all)
	size := len(union) * width
	for _, d := range dense {
		size += len(d)
	}
	buf := make([]float64, size)
	for i, id := range union {
		if row, ok := rows[id]; ok {
			copy(buf[i*width:], row)
		}
	}
	at := len(union) * width
	for _, d := range dense {
		copy(buf[at:], d)
		at += len(d)
	}
	for lo := 0; lo < len(buf); lo += bucketFloats / 2 {
		if err := g.SumFloat64("static gradient", buf[lo:min(lo+bucketFloats/2, len(buf))]); err != nil {
			return nil, err
		}
	}
	out := make(map[int64][]float64, len(union))
	for i, id := range union {
		out[id] = buf[i*width : (i+1)*width : (i+1)*width]
	}
	at = len(union) * width
	for _, d := range dense {
		copy(d, buf[at:at+len(d)])
		at += len(d)
	}
	return out, nil
}

// broadcastFloats copies rank 0's buffers into every rank's.
func broadcastFloats(g Group, what string, bufs ...[]float32) error {
	for _, b := range bufs {
		for lo := 0; lo < len(b); lo += bucketFloats {
			if err := g.BroadcastFloat32(what, b[lo:min(lo+bucketFloats, len(b))], 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncState makes every rank start where rank 0 starts: its step, loss and
// sampler state (resumed from a checkpoint or fresh), then its weights and
// optimiser moments. A run may therefore resume with another world size.
func (t *training) syncState(g Group) error {
	var st []byte
	if g.Rank() == 0 {
		sampler, err := json.Marshal(t.sampler)
		if err != nil {
			return err
		}
		if st, err = json.Marshal(checkpointState{Step: t.step, Loss: t.loss, Sampler: sampler}); err != nil {
			return err
		}
	}
	st, err := g.BroadcastBytes("training state", st, 0)
	if err != nil {
		return err
	}
	var s checkpointState
	if err := json.Unmarshal(st, &s); err != nil {
		return fmt.Errorf("rank 0's training state: %w", err)
	}
	if err := json.Unmarshal(s.Sampler, t.sampler); err != nil {
		return fmt.Errorf("rank 0's sampler state: %w", err)
	}
	t.step, t.loss = s.Step, s.Loss
	return t.enc.broadcast(g, t.step)
}
