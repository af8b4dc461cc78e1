package store

import (
	"errors"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// TestRepeatedStallsWaitLonger: a mirror demoted again and again without serving a chunk
// in between (a tarpit: its probe answers, real chunks stall) waits about twice as long
// before each re-probe, where it was readmitted after half a second every time; one chunk
// served resets it.
func TestRepeatedStallsWaitLonger(t *testing.T) {
	s := &MirrorSet{}
	m := &mirror{name: "http://tarpit", state: stateUp}
	var waits []time.Duration
	for range 5 {
		before := time.Now()
		s.demote(m, chunk.Ref{}, errors.New("no answer within 30s"), false)
		waits = append(waits, m.nextProbe.Sub(before))
		m.state = stateUp // readmitted by its probe
	}
	for i, w := range waits {
		lo := time.Duration(float64(probeBackoffMin<<i) * 0.7)
		if w < lo {
			t.Errorf("demotion %d: re-probe after %s, want at least %s (waits %v)", i+1, w, lo, waits)
		}
	}
	m.strikes = 0 // what serving a chunk does
	before := time.Now()
	s.demote(m, chunk.Ref{}, errors.New("no answer"), false)
	if w := m.nextProbe.Sub(before); w > probeBackoffMin*2 {
		t.Errorf("after a chunk served, the next demotion waits %s, want about %s again", w, probeBackoffMin)
	}
	for range 1000 {
		if j := jitter(time.Second); j < 750*time.Millisecond || j >= 1250*time.Millisecond {
			t.Fatalf("jitter(1s) = %s, outside [0.75s, 1.25s)", j)
		}
	}
}
