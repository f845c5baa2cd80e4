package c10d

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Backends a Config can name.
const (
	BackendGloo = "gloo" // CPU, every libtorch
	BackendNCCL = "nccl" // CUDA libtorch with NCCL only
	BackendAuto = "auto" // nccl where the libtorch has CUDA, else gloo
)

// DefaultTimeout bounds the rendezvous and every collective: a rank that
// died or hung makes the others fail within it. Rank 0's validation runs
// while the others wait in their next collective, so it must exceed that.
const DefaultTimeout = 10 * time.Minute

// Config is one process's place in a group, as torchrun describes it.
type Config struct {
	WorldSize, Rank, LocalRank int
	MasterAddr                 string
	MasterPort                 int
	Backend                    string
	Timeout                    time.Duration
	// Interface is the network interface Gloo binds to (torch's
	// GLOO_SOCKET_IFNAME); empty means the address that reaches MasterAddr.
	Interface string
}

// Env names the variables of torchrun's contract that FromEnv reads; a
// launcher (xling train --nproc, the chart's PyTorchJob and Indexed Job)
// sets exactly these.
var Env = []string{"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}

// FromEnv reads torchrun's variables through getenv. It returns false when
// WORLD_SIZE is unset: the process trains alone.
func FromEnv(getenv func(string) string) (Config, bool, error) {
	if getenv("WORLD_SIZE") == "" {
		return Config{}, false, nil
	}
	c := Config{MasterAddr: getenv("MASTER_ADDR"), Backend: BackendAuto, Timeout: DefaultTimeout, Interface: getenv("GLOO_SOCKET_IFNAME")}
	ints := []struct {
		name string
		dst  *int
		def  string
	}{{"WORLD_SIZE", &c.WorldSize, ""}, {"RANK", &c.Rank, ""}, {"LOCAL_RANK", &c.LocalRank, "-"}, {"MASTER_PORT", &c.MasterPort, "29500"}}
	for _, v := range ints {
		s := getenv(v.name)
		if s == "" {
			if v.def == "" {
				return Config{}, false, fmt.Errorf("c10d: WORLD_SIZE is set but %s is not (torchrun sets %v)", v.name, Env)
			}
			if v.def == "-" { // LOCAL_RANK defaults to RANK
				c.LocalRank = c.Rank
				continue
			}
			s = v.def
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return Config{}, false, fmt.Errorf("c10d: %s=%q is not an integer", v.name, s)
		}
		*v.dst = n
	}
	if c.MasterAddr == "" {
		c.MasterAddr = "127.0.0.1"
	}
	return c, true, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.WorldSize < 1:
		return fmt.Errorf("c10d: WORLD_SIZE=%d: want at least 1", c.WorldSize)
	case c.Rank < 0 || c.Rank >= c.WorldSize:
		return fmt.Errorf("c10d: RANK=%d is outside 0..%d (WORLD_SIZE=%d)", c.Rank, c.WorldSize-1, c.WorldSize)
	case c.MasterPort < 1 || c.MasterPort > 65535:
		return fmt.Errorf("c10d: MASTER_PORT=%d is not a TCP port", c.MasterPort)
	case c.Timeout <= 0:
		return errors.New("c10d: the timeout must be positive")
	}
	switch c.Backend {
	case BackendGloo, BackendNCCL, BackendAuto, "":
		return nil
	}
	return fmt.Errorf("c10d: backend %q: want %s, %s or %s", c.Backend, BackendGloo, BackendNCCL, BackendAuto)
}

// device is how Gloo picks its address: the interface if one is named, the
// loopback address when the master is on this machine, else libtorch's
// default (this host's name).
func (c Config) device() (kind int, name string) {
	if c.Interface != "" {
		return 1, c.Interface
	}
	if ip := net.ParseIP(c.MasterAddr); (ip != nil && ip.IsLoopback()) || c.MasterAddr == "localhost" {
		return 0, "127.0.0.1"
	}
	return 2, ""
}

// gloThreads is Gloo's worker threads per group: PyTorch's default.
func (c Config) gloThreads() int { return 2 }
