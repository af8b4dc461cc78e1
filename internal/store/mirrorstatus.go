package store

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// MirrorStatus is what a set knows about one mirror, for status output and rankings.
type MirrorStatus struct {
	Name       string
	State      string
	Latency    time.Duration // moving average of small requests
	P50, P95   time.Duration // of recent chunk requests (0: too few)
	Throughput float64       // bytes/s, moving average (0: not measured)
	InFlight   int
	Requests   int64
	Failures   int64
	Corrupt    int64
	Hedges     int64 // requests to this mirror that were hedged
	Bytes      int64
	LastError  string
	Peer       bool    // a LAN peer (peers.go), not a mirror
	HitRatio   float64 // peers: how often it had the chunk asked for (moving average)
}

// Status returns every mirror, best first (up before down before bad, then by expected
// time for a 64 KiB chunk on an idle mirror).
func (s *MirrorSet) Status() []MirrorStatus {
	var out []MirrorStatus
	var rank []time.Duration
	var states []mirrorState
	for _, m := range s.snapshot() {
		m.mu.Lock()
		st := MirrorStatus{
			Name: m.name, State: m.state.String(),
			Latency:    time.Duration(m.est.latency * float64(time.Second)),
			Throughput: m.est.throughput,
			InFlight:   m.inflight, Requests: m.requests, Failures: m.failures, Corrupt: m.corrupt,
			Hedges: m.hedges, Bytes: m.bytes, LastError: m.lastErr,
			Peer: m.peer, HitRatio: m.hit,
		}
		st.P50, _ = m.est.quantile(0.5, 4)
		st.P95, _ = m.est.quantile(0.95, 4)
		rank = append(rank, m.est.expected(64<<10))
		states = append(states, m.state)
		m.mu.Unlock()
		out = append(out, st)
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if states[a] != states[b] {
			return int(states[a]) - int(states[b])
		}
		return cmpDur(rank[a], rank[b])
	})
	sorted := make([]MirrorStatus, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted
}

// Measure fetches refs from every mirror (each mirror its own copy of the list, one
// request at a time, all mirrors at once) to measure them on real chunks. Failures
// demote as usual. It returns when every mirror is done or ctx ends.
func (s *MirrorSet) Measure(ctx context.Context, refs []chunk.Ref) {
	var wg sync.WaitGroup
	for _, m := range s.snapshot() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, ref := range refs {
				if _, err := s.attempt(ctx, m, ref, false); err != nil {
					return
				}
				s.remember(ref)
			}
		}()
	}
	wg.Wait()
}
