package store

import "testing"

// A peer's hit ratio must not depend on the order in which the answers of a burst come
// back: a peer holding every other chunk that answers each read-ahead burst of 32 with
// its hits first and its misses last still has about half.
func TestPeerHitRatioIgnoresOrderInABurst(t *testing.T) {
	half := &mirror{peer: true, hit: peerHitPrior}
	low := 1.0
	for range 4 {
		for i := range 32 {
			half.sawChunk(i < 16)
		}
		low = min(low, half.hit)
	}
	if low < 0.3 {
		t.Errorf("a peer with half the chunks: hit ratio down to %.3f after a burst's misses", low)
	}
	// An empty peer is still written off after a few answers.
	empty := &mirror{peer: true, hit: peerHitPrior}
	for range 12 {
		empty.sawChunk(false)
	}
	if empty.hit > 0.05 {
		t.Errorf("a peer that missed 12 times: hit ratio %.3f", empty.hit)
	}
	// Mirrors have no hit ratio.
	m := &mirror{}
	m.sawChunk(true)
	if m.hit != 0 || m.answers != 0 {
		t.Errorf("a mirror's hit ratio moved: %v after %d", m.hit, m.answers)
	}
}
