package store

import (
	"testing"
	"time"
)

func latencyOf(e *estimate) time.Duration {
	return time.Duration(e.latency * float64(time.Second))
}

// A small request's time is the latency only when it ran alone: one that shared the
// mirror may have waited behind the others (on a loaded machine, for a CPU), so it may
// lower the estimate but never raise it.
func TestLatencyFromSharedRequestsOnlyLowers(t *testing.T) {
	e := estimate{assumed: 0.002} // a LAN peer, not measured yet
	e.observe(4<<10, 40*time.Millisecond, 20)
	if e.latency != 0 || e.expected(0) != 2*time.Millisecond {
		t.Errorf("after a small request that waited behind 19 others: latency %v, expected %v; want still the assumed 2ms",
			latencyOf(&e), e.expected(0))
	}
	e.observe(4<<10, time.Millisecond, 1)
	if got := latencyOf(&e); got != time.Millisecond {
		t.Fatalf("a request alone took 1ms: latency %v", got)
	}
	e.observe(4<<10, 30*time.Millisecond, 8)
	if got := latencyOf(&e); got != time.Millisecond {
		t.Errorf("a request sharing the mirror with 7 took 30ms: latency %v, want still 1ms", got)
	}
	e.observe(4<<10, 500*time.Microsecond, 8)
	if got := latencyOf(&e); got >= time.Millisecond || got < 500*time.Microsecond {
		t.Errorf("a request sharing the mirror took 0.5ms: latency %v, want lowered toward it", got)
	}
	before := e.latency
	e.observe(4<<10, 5*time.Millisecond, 1)
	if e.latency <= before {
		t.Errorf("a request alone took 5ms: latency %v stayed", latencyOf(&e))
	}

	// The first large chunk of a burst: its time is transfer and waiting, not latency.
	f := estimate{assumed: 0.002}
	f.observe(64<<10, 50*time.Millisecond, 30)
	if f.latency != 0 || f.throughput == 0 {
		t.Errorf("after a first 64 KiB chunk in a burst of 30: latency %v (want unmeasured), throughput %.0f (want measured)",
			latencyOf(&f), f.throughput)
	}
	if got := f.expected(64 << 10); got > 10*time.Millisecond {
		t.Errorf("an idle LAN peer that served 30 chunks of 64 KiB in 50ms is expected to take %v for one", got)
	}
}
