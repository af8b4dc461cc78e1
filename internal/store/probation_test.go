package store

import (
	"testing"
	"time"
)

// TestReadmittedMirrorIsOnProbation: a mirror readmitted after a strike takes one
// request at a time (another healthy mirror gets the rest, however fast the readmitted
// one looks), is hedged after twice what the good mirror takes instead of its own delay,
// and only after probationChunks chunks served is its record of stalls wiped.
func TestReadmittedMirrorIsOnProbation(t *testing.T) {
	fast := &mirror{name: "http://tarpit-turned-fast", state: stateDown, strikes: 2}
	fast.est.latency, fast.est.throughput = 0.001, 1e9
	fast.est.recent[0], fast.est.n = 30, 1 // it stalled for 30 s before
	good := &mirror{name: "http://good", state: stateUp}
	good.est.latency, good.est.throughput = 0.010, 100e6
	s := &MirrorSet{opt: MirrorOptions{Spread: 3, HedgeMin: time.Millisecond}, mirrors: []*mirror{fast, good}}

	fast.readmit()
	if fast.state != stateUp || fast.probation != probationChunks {
		t.Fatalf("readmitted after a strike: state %s, probation %d; want up on probation for %d", fast.state, fast.probation, probationChunks)
	}
	if m := s.choose(64<<10, nil); m != fast {
		t.Fatalf("idle on probation: chose %s, want the faster mirror to get its one request", m.name)
	}
	fast.inflight = 1
	if m := s.choose(64<<10, nil); m != good {
		t.Fatalf("busy on probation: chose %s, want %s", m.name, good.name)
	}
	good.state = stateDown
	if m := s.choose(64<<10, nil); m != fast {
		t.Fatalf("busy on probation, the other mirror down: chose %v, want %s rather than nothing", m, fast.name)
	}
	good.state = stateUp
	want := 2 * good.est.expected(64<<10)
	if d := s.hedgeAfter(fast, 64<<10); d > want+time.Millisecond {
		t.Errorf("on probation, hedged after %s; want at most twice the good mirror's %s", d, want/2)
	}
	for i := range probationChunks {
		if fast.strikes == 0 {
			t.Fatalf("strikes wiped after %d of %d chunks on probation", i, probationChunks)
		}
		fast.served()
	}
	if fast.probation != 0 || fast.strikes != 0 {
		t.Fatalf("after %d chunks: probation %d, strikes %d; want both 0", probationChunks, fast.probation, fast.strikes)
	}
	fast.inflight = 5
	if m := s.choose(64<<10, nil); m != fast {
		t.Errorf("off probation: chose %s, want the fast mirror in full standing", m.name)
	}

	// A mirror that was merely down (no strike: never stalled on a chunk) comes back as is.
	plain := &mirror{name: "http://restarted", state: stateDown}
	plain.readmit()
	if plain.probation != 0 {
		t.Errorf("readmitted without a strike: probation %d, want 0", plain.probation)
	}
}

// TestStalledRequestCountsWhileItRuns: a mirror with a request running far longer than
// its estimate loses the next request to a slower mirror before that request ends.
func TestStalledRequestCountsWhileItRuns(t *testing.T) {
	tarpit := &mirror{name: "http://tarpit", state: stateUp}
	tarpit.est.latency, tarpit.est.throughput = 0.002, 1e9
	slower := &mirror{name: "http://slower", state: stateUp}
	slower.est.latency, slower.est.throughput = 0.020, 100e6
	s := &MirrorSet{opt: MirrorOptions{Spread: 3}, mirrors: []*mirror{tarpit, slower}}
	if m := s.choose(64<<10, nil); m != tarpit {
		t.Fatalf("chose %s before any stall, want the tarpit (it looks fastest)", m.name)
	}
	tarpit.inflight = 1
	id := tarpit.beginAttempt(time.Now().Add(-time.Second))
	if m := s.choose(64<<10, nil); m != slower {
		t.Fatalf("with a request stalled 1 s on the tarpit: chose %s, want %s", m.name, slower.name)
	}
	tarpit.endAttempt(id)
	tarpit.inflight = 0
	if m := s.choose(64<<10, nil); m != tarpit {
		t.Errorf("after the stalled request ended: chose %s, want the tarpit again (its estimate decides)", m.name)
	}
}
