package store

import "time"

// Observer is told what a mirror set and a disk cache do, for metrics. The store reports
// events; what becomes of them (Prometheus counters: internal/metrics) is the caller's
// business, so this package does not depend on a metrics library. Calls come from the
// fetch path, concurrently: an Observer must be safe for concurrent use and quick.
type Observer interface {
	// MirrorAdded: a mirror (not a peer) joined the set. Its series can start at zero,
	// so a mirror that never failed shows 0 failures rather than no series at all.
	MirrorAdded(mirror string)
	// Request: one chunk request to a mirror or peer ended with result (ok, error,
	// corrupt, cancelled, miss) after d; bytes is the stored size received when ok.
	Request(mirror, result string, bytes int, d time.Duration)
	// Hedge: a request was repeated on a second mirror (won false), or a hedge's second
	// request answered first (won true).
	Hedge(won bool)
	// Failover: a request moved to another mirror after a failure.
	Failover()
	// Waiting: delta (+1, -1) fetches now wait for any mirror to come back.
	Waiting(delta int)
	// CacheLookup: a chunk was found in the disk cache (hit) or not.
	CacheLookup(hit bool)
	// CacheSize: the disk cache now holds bytes of chunks, having evicted evicted more.
	CacheSize(bytes int64, evicted int)
}

// noObserver is the Observer of a set or cache given none: it records nothing, so the
// fetch path never checks whether metrics are wanted.
type noObserver struct{}

func (noObserver) MirrorAdded(string)                         {}
func (noObserver) Request(string, string, int, time.Duration) {}
func (noObserver) Hedge(bool)                                 {}
func (noObserver) Failover()                                  {}
func (noObserver) Waiting(int)                                {}
func (noObserver) CacheLookup(bool)                           {}
func (noObserver) CacheSize(int64, int)                       {}

var _ Observer = noObserver{}

// observer returns o, or noObserver for nil.
func observer(o Observer) Observer {
	if o == nil {
		return noObserver{}
	}
	return o
}
