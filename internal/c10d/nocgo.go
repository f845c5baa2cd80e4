//go:build !cgo

package c10d

import (
	"context"
	"errors"
	"log/slog"
)

// Available says whether this build has the c10d layer.
const Available = false

var errNoCgo = errors.New("c10d: this xling was built without cgo, so without libtorch's distributed runtime")

// Group is this process's membership of a process group.
type Group struct{ cfg Config }

// Join fails: there is no libtorch in a build without cgo.
func Join(context.Context, Config, *slog.Logger) (*Group, error) { return nil, errNoCgo }

// The methods of the cgo build, each failing.

func (g *Group) Rank() int                                          { return g.cfg.Rank }
func (g *Group) Size() int                                          { return g.cfg.WorldSize }
func (g *Group) Close()                                             {}
func (g *Group) Barrier(string) error                               { return errNoCgo }
func (g *Group) Progress(int)                                       {}
func (g *Group) Fail(error)                                         {}
func (g *Group) SumFloat32(string, []float32) error                 { return errNoCgo }
func (g *Group) SumFloat64(string, []float64) error                 { return errNoCgo }
func (g *Group) BroadcastFloat32(string, []float32, int) error      { return errNoCgo }
func (g *Group) BroadcastBytes(string, []byte, int) ([]byte, error) { return nil, errNoCgo }
func (g *Group) GatherFloat32(string, []float32, int) ([]float32, []int, error) {
	return nil, nil, errNoCgo
}
func (g *Group) GatherInt64(string, []int64) ([]int64, []int, error) { return nil, nil, errNoCgo }
