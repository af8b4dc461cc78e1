package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// Mirror health: probes at start and in the background, demotion on failure, fail-back.

// Probe measures every mirror at once with one small request, marking the ones that do
// not answer down (the background prober retries them). It returns when all answered or
// ctx ends.
func (s *MirrorSet) Probe(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range s.snapshot() {
		wg.Add(1)
		go func() { defer wg.Done(); s.probe(ctx, m) }()
	}
	wg.Wait()
}

// probe sends one small request to m and records the outcome. With a known chunk it
// fetches and verifies that chunk (which a bad mirror must pass to be trusted again);
// otherwise it fetches the probe file, for which "not found" still proves the server
// answers.
func (s *MirrorSet) probe(ctx context.Context, m *mirror) bool {
	s.mu.Lock()
	known := s.known
	s.mu.Unlock()
	m.mu.Lock()
	if m.state == stateBad && known == nil {
		// Only a verified chunk can show a mirror that lied is honest again.
		m.probing = false
		m.nextProbe = time.Now().Add(m.backoff)
		m.mu.Unlock()
		return false
	}
	busyAtStart := m.inflight // requests the probe may wait behind
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	start := time.Now()
	var err error
	if known != nil {
		var raw []byte
		raw, err = m.store.Chunk(ctx, *known)
		if err == nil {
			_, err = chunk.Decode(nil, known.ID, int(known.Len), raw)
		}
	} else {
		_, err = m.store.File(ctx, s.opt.ProbeFile, 64<<10)
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
	}
	d := time.Since(start)
	answered := false // a peer without the probe chunk still answered
	if m.peer && known != nil && isPeerMiss(err) && m.state != stateBad {
		err, answered = nil, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.probing = false
	if err != nil {
		m.lastErr = err.Error()
		if m.state == stateUp {
			m.state = stateDown
			m.backoff = probeBackoffMin
			s.logHealth("%s %s does not answer: %v (demoted, re-probing)", m.kind(), m.name, err)
		}
		m.nextProbe = time.Now().Add(m.backoff)
		m.backoff = min(2*m.backoff, m.maxBackoff())
		return false
	}
	shared := 1 + (busyAtStart+m.inflight+1)/2 // the probe and the requests beside it
	if known == nil || answered {
		m.est.sampleLatency(d.Seconds(), shared) // a small request: all latency
	} else {
		m.est.observe(int(known.Stored), d, shared)
	}
	if m.state != stateUp {
		m.readmit()
		if m.probation > 0 {
			s.logHealth("%s %s is back (answered in %s; on probation for %d chunks)", m.kind(), m.name, d.Round(time.Millisecond), m.probation)
		} else {
			s.logHealth("%s %s is back (answered in %s)", m.kind(), m.name, d.Round(time.Millisecond))
		}
	}
	return true
}

func (m *mirror) maxBackoff() time.Duration {
	if m.state == stateBad {
		return badBackoffMax
	}
	return probeBackoffMax
}

// prober re-probes demoted mirrors when their backoff has passed.
func (s *MirrorSet) prober() {
	defer s.probing.Done()
	t := time.NewTicker(probeTick)
	defer t.Stop()
	// Probes in flight are cancelled before they are waited for: Close must not wait out
	// a probe stalled on a tarpit.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		for _, m := range s.snapshot() {
			m.mu.Lock()
			due := m.state != stateUp && !m.probing && now.After(m.nextProbe)
			if due {
				m.probing = true
			}
			m.mu.Unlock()
			if due {
				wg.Add(1)
				go func() { defer wg.Done(); s.probe(ctx, m) }()
			}
		}
	}
}

// demote marks m failed after err. A corrupt chunk demotes it hard.
func (s *MirrorSet) demote(m *mirror, ref chunk.Ref, err error, corrupt bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastErr = err.Error()
	m.failures++
	if corrupt {
		s.demoteHard(m, fmt.Sprintf("a corrupt chunk %s: %v", ref.ID, err))
		return
	}
	if m.state == stateUp {
		m.state = stateDown
		m.strikes++
		// Each demotion without a chunk served in between waits twice as long before the
		// first re-probe (jittered, so a fleet does not probe in lockstep).
		wait := jitter(min(probeBackoffMin<<min(m.strikes-1, 10), probeBackoffMax))
		m.nextProbe = time.Now().Add(wait)
		m.backoff = min(2*wait, probeBackoffMax)
		s.logHealth("%s %s failed: %v (demoted, re-probing in %s)", m.kind(), m.name, err, wait.Round(time.Millisecond))
	}
}

// jitter spreads d over [0.75 d, 1.25 d).
func jitter(d time.Duration) time.Duration {
	return d*3/4 + time.Duration(rand.Int64N(int64(d)/2+1))
}

// distrust demotes m as hard as a mirror that served a corrupt chunk: metadata it served
// (a latest pointer, an index) failed verification with err.
func (s *MirrorSet) distrust(m *mirror, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastErr = err.Error()
	m.failures++
	s.demoteHard(m, fmt.Sprintf("metadata that failed verification: %v", err))
}

// demoteHard marks m bad (m.mu held): it served served, which cannot be a hiccup. Each
// demotion in a row doubles the time to its next probe; it is logged once per demotion,
// not once per file it keeps serving wrong.
func (s *MirrorSet) demoteHard(m *mirror, served string) {
	m.corrupt++
	wasBad := m.state == stateBad
	m.state = stateBad
	if !wasBad {
		m.backoff = badBackoffMin
	}
	m.nextProbe = time.Now().Add(m.backoff)
	if !wasBad {
		s.logHealth("%s %s served %s (demoted hard; next probe in %s)", m.kind(), m.name, served, m.backoff)
	}
	m.backoff = min(2*m.backoff, badBackoffMax)
}

// logHealth logs a change in a mirror's health. With a single mirror there is nothing to
// rank or fail over to: its failures are the read's failures and reach the caller (and
// the waiting reads' log) as errors naming the URL, so they are not logged twice.
func (s *MirrorSet) logHealth(format string, args ...any) {
	if s.Len() > 1 {
		s.opt.Log(format, args...)
	}
}
