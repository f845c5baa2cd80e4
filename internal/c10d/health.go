//go:build cgo

package c10d

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// heartbeatEvery is how often a rank says it is alive; explain calls a rank
// stopped when its heartbeat has not moved for staleAfter.
const (
	heartbeatEvery = 500 * time.Millisecond
	staleAfter     = 4 * heartbeatEvery
)

func aliveKey(rank int) string  { return "xling/alive/" + strconv.Itoa(rank) }
func failedKey(rank int) string { return "xling/failed/" + strconv.Itoa(rank) }
func stepKey(rank int) string   { return "xling/step/" + strconv.Itoa(rank) }

// heartbeat writes this rank's counter to the store until Close: when a
// collective fails, the others learn from it which rank stopped.
func (g *Group) heartbeat() {
	defer close(g.done)
	for n := 0; ; n++ {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return
		}
		err := g.set(aliveKey(g.cfg.Rank), []byte(strconv.Itoa(n)))
		g.mu.Unlock()
		if err != nil {
			return // the store is gone; a collective will say so
		}
		if !g.sleep(heartbeatEvery) {
			return
		}
	}
}

// Progress publishes the step this rank is at, so that a timeout can name
// the ranks that fell behind.
func (g *Group) Progress(step int) {
	_ = g.set(stepKey(g.cfg.Rank), []byte(strconv.Itoa(step)))
}

// Fail tells the other ranks why this one is about to exit, so that their
// errors name it and its cause rather than a closed connection.
func (g *Group) Fail(err error) {
	_ = g.set(failedKey(g.cfg.Rank), []byte(err.Error()))
}

// explain says, as far as the store can tell within a few seconds, which
// ranks caused a failed collective: those that reported a failure, those
// whose heartbeat stopped, and those behind the others.
func (g *Group) explain() string {
	others := make([]int, 0, g.cfg.WorldSize-1)
	for r := 0; r < g.cfg.WorldSize; r++ {
		if r != g.cfg.Rank {
			others = append(others, r)
		}
	}
	var why []string
	read := func(key string) (string, bool, error) {
		b, ok, err := g.lookup(key)
		return string(b), ok, err
	}
	for _, r := range others {
		msg, ok, err := read(failedKey(r))
		if err != nil {
			return fmt.Sprintf("; the rendezvous store at %s, hosted by rank 0, is unreachable: rank 0 has stopped", g.storeAddr())
		}
		if ok {
			why = append(why, fmt.Sprintf("rank %d failed: %s", r, msg))
		}
	}
	if len(why) > 0 {
		return "; " + strings.Join(why, "; ")
	}
	before := map[int]string{}
	for _, r := range others {
		before[r], _, _ = read(aliveKey(r))
	}
	time.Sleep(staleAfter)
	steps := map[int]int{}
	latest := -1
	for _, r := range append([]int{g.cfg.Rank}, others...) {
		if s, ok, _ := read(stepKey(r)); ok {
			n, _ := strconv.Atoi(s)
			steps[r], latest = n, max(latest, n)
		}
	}
	for _, r := range others {
		now, _, err := read(aliveKey(r))
		switch {
		case err != nil:
			return fmt.Sprintf("; the rendezvous store at %s, hosted by rank 0, is unreachable: rank 0 has stopped", g.storeAddr())
		case now == before[r]:
			why = append(why, fmt.Sprintf("rank %d has stopped (no heartbeat for %s)", r, staleAfter))
		case steps[r] < latest:
			why = append(why, fmt.Sprintf("rank %d is alive but stuck at step %d (others reached %d)", r, steps[r], latest))
		}
	}
	if len(why) == 0 {
		return "; every other rank is still alive"
	}
	return "; " + strings.Join(why, "; ")
}
