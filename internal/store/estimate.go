package store

import (
	"slices"
	"time"
)

// estimate is what a mirror set knows of one mirror's speed: a moving average of its
// latency (time to answer a small request) and of its throughput (bytes per second the
// mirror delivers in all, shared by the requests in flight), and the recent request
// times for quantiles. The zero value is usable. It is not safe for concurrent use; the
// mirror's lock guards it.
type estimate struct {
	latency    float64 // seconds, EWMA; 0: unknown
	assumed    float64 // latency to assume while unknown (keeps the caller's order)
	throughput float64 // bytes/s over all requests in flight, EWMA; 0: unknown
	recent     [256]float64
	n          int // samples recorded in recent (ring position = n % len)

	// The last quantile computed (sorting the samples on every request cost 5 % of a
	// cold read's CPU): reused until quantileEvery more samples came in.
	lastQ     float64
	lastQAt   int
	lastQTime time.Duration
}

// quantileEvery is how many new samples make quantile sort again.
const quantileEvery = 16

const (
	ewmaWeight = 0.2 // weight of a new sample: adapts within ~10 requests
	// smallRequest is the size below which a request's time is all latency.
	smallRequest = 8 << 10
	// assumedThroughput stands in until a mirror has answered a large request.
	assumedThroughput = 50 << 20
)

func ewma(old, sample float64) float64 {
	if old == 0 {
		return sample
	}
	return old + ewmaWeight*(sample-old)
}

// observe records a request of size bytes that took d while `shared` requests (itself
// included) were in flight on the same mirror: each got about 1/shared of the mirror's
// throughput.
func (e *estimate) observe(size int, d time.Duration, shared int) {
	s := d.Seconds()
	if s <= 0 {
		s = 1e-6
	}
	e.recent[e.n%len(e.recent)] = s
	e.n++
	if size < smallRequest || e.latency == 0 {
		e.sampleLatency(s, shared)
		if size < smallRequest {
			return
		}
	}
	// The part of the time beyond the usual latency is the transfer. Never let a request
	// faster than the latency estimate claim infinite throughput.
	lat := e.latency
	if lat == 0 {
		lat = e.assumed
	}
	transfer := s - lat
	if transfer < s/4 {
		transfer = s / 4
		e.latency = ewma(e.latency, s*3/4) // the latency estimate was too high
	}
	e.throughput = ewma(e.throughput, float64(size)*float64(max(shared, 1))/transfer)
}

// sampleLatency records s seconds as the time to answer a small request (a small chunk,
// a probe, a peer's "not here") made while `shared` requests (itself included) were in
// flight. A request that ran alone measures the latency. One that shared the mirror may
// also have waited behind the others, in the mirror's queue or, on a loaded machine, for
// a CPU: its time bounds the latency from above only, so it may lower the estimate but
// never raise it, and while nothing has been measured alone the assumed latency stands
// unless it shows lower. (Booking such a wait as latency made a LAN peer on a loaded
// machine look as slow as a distant mirror: the set stopped asking it.)
func (e *estimate) sampleLatency(s float64, shared int) {
	if shared > 1 {
		bound := e.latency
		if bound == 0 {
			bound = e.assumed
		}
		if bound > 0 && s >= bound {
			return
		}
	}
	e.latency = ewma(e.latency, s)
}

// expected returns how long a request of size bytes should take on an idle mirror.
func (e *estimate) expected(size int) time.Duration { return e.expectedWith(size, 0) }

// expectedWith returns how long a request of size bytes should take when `busy`
// requests are already in flight on the mirror and share its throughput with it.
func (e *estimate) expectedWith(size, busy int) time.Duration {
	thr := e.throughput
	if thr == 0 {
		thr = assumedThroughput
	}
	lat := e.latency
	if lat == 0 {
		lat = e.assumed
	}
	return time.Duration((lat + float64(size)*float64(busy+1)/thr) * float64(time.Second))
}

// quantile returns the q-quantile of the recent request times, and whether there were
// at least minSamples to tell.
func (e *estimate) quantile(q float64, minSamples int) (time.Duration, bool) {
	n := min(e.n, len(e.recent))
	if n < max(minSamples, 1) {
		return 0, false
	}
	if e.lastQAt > 0 && q == e.lastQ && e.n-e.lastQAt < quantileEvery {
		return e.lastQTime, true
	}
	s := slices.Clone(e.recent[:n])
	slices.Sort(s)
	i := int(q * float64(n-1))
	e.lastQ, e.lastQAt = q, e.n
	e.lastQTime = time.Duration(s[i] * float64(time.Second))
	return e.lastQTime, true
}
