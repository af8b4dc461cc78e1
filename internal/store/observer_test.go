package store_test

import (
	"slices"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/store"
)

// recorder is a store.Observer that counts what it is told, for tests to read back
// without a metrics library.
type recorder struct {
	mu        sync.Mutex
	added     []string
	corrupt   map[string]float64 // per mirror
	results   map[string]float64 // per result
	hedges    float64
	hedgeWins float64
	failovers float64
	waiting   float64
	hits      float64
	misses    float64
	cached    int64
	evicted   float64
}

var _ store.Observer = (*recorder)(nil)

func newObserver() *recorder {
	return &recorder{corrupt: map[string]float64{}, results: map[string]float64{}}
}

func (r *recorder) MirrorAdded(mirror string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.added = append(r.added, mirror)
}

func (r *recorder) Request(mirror, result string, bytes int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results[result]++
	if result == "corrupt" {
		r.corrupt[mirror]++
	}
}

func (r *recorder) Hedge(won bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if won {
		r.hedgeWins++
	} else {
		r.hedges++
	}
}

func (r *recorder) Failover() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failovers++
}

func (r *recorder) Waiting(delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting += float64(delta)
}

func (r *recorder) CacheLookup(hit bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hit {
		r.hits++
	} else {
		r.misses++
	}
}

func (r *recorder) CacheSize(bytes int64, evicted int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cached = bytes
	r.evicted += float64(evicted)
}

func (r *recorder) read(v *float64) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return *v
}

func (r *recorder) HashFailures(mirror string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.corrupt[mirror]
}

func (r *recorder) Added() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.added)
}

func (r *recorder) Hedges() float64         { return r.read(&r.hedges) }
func (r *recorder) HedgeWins() float64      { return r.read(&r.hedgeWins) }
func (r *recorder) Failovers() float64      { return r.read(&r.failovers) }
func (r *recorder) FetchesWaiting() float64 { return r.read(&r.waiting) }
func (r *recorder) CacheMisses() float64    { return r.read(&r.misses) }
