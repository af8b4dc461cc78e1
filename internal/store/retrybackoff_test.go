package store

import (
	"slices"
	"testing"
	"time"
)

// Two Policies' waits differ (jitter), and each stays within ±retryJitter of the nominal
// 50 ms doubling to 5 s.
func TestRetryBackoffJitteredWithinBounds(t *testing.T) {
	const n = 20
	seq := func() []time.Duration {
		b := newRetryBackoff()
		var out []time.Duration
		for range n {
			out = append(out, b.NextBackOff())
		}
		return out
	}
	a, b := seq(), seq()
	if slices.Equal(a, b) {
		t.Errorf("two policies wait alike: %v", a)
	}
	for _, s := range [][]time.Duration{a, b} {
		nominal := backoffMin
		for i, w := range s {
			lo := time.Duration(float64(nominal) * (1 - retryJitter))
			hi := time.Duration(float64(nominal)*(1+retryJitter)) + 1
			if w < lo || w > hi {
				t.Errorf("wait %d = %s, outside [%s, %s]", i, w, lo, hi)
			}
			nominal = min(2*nominal, backoffMax)
		}
	}
	// Distinct too where it matters most: the first waits, when a fleet failed together.
	if a[0] == b[0] && a[1] == b[1] && a[2] == b[2] {
		t.Errorf("the first three waits are the same: %v", a[:3])
	}
}
