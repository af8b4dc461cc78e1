package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nowhere-boot/nowhere/internal/store"
)

// Store is the Prometheus side of a mirror set and a disk cache: the store.Observer
// given to them (MirrorOptions.Metrics, OpenDiskCache) turns their events into the
// nowhere_mirror_*, nowhere_hedge*, nowhere_failovers, nowhere_fetches_waiting and
// nowhere_cache_* series (docs/mirrors.md, "Observability"). A nil *Store records
// nothing.
type Store struct {
	requests   *prometheus.CounterVec   // mirror, result
	bytes      *prometheus.CounterVec   // mirror
	latency    *prometheus.HistogramVec // mirror
	hashFails  *prometheus.CounterVec   // mirror
	hedges     prometheus.Counter
	hedgeWins  prometheus.Counter
	failovers  prometheus.Counter
	waiting    prometheus.Gauge
	cacheHits  prometheus.Counter
	cacheMiss  prometheus.Counter
	cacheEvict prometheus.Counter
	cacheBytes prometheus.Gauge
}

var _ store.Observer = (*Store)(nil)

// NewStore creates the metrics and registers them with reg (nil: a new registry's
// worth of metrics that nobody scrapes, which tests use to read values).
func NewStore(reg prometheus.Registerer) *Store {
	m := &Store{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nowhere_mirror_requests_total",
			Help: "Chunk requests sent to each mirror, by result (ok, error, corrupt, cancelled).",
		}, []string{"mirror", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nowhere_mirror_bytes_total",
			Help: "Verified chunk bytes (as stored, compressed) received from each mirror.",
		}, []string{"mirror"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nowhere_mirror_request_seconds",
			Help:    "Time of successful chunk requests per mirror.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. 16 s
		}, []string{"mirror"}),
		hashFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nowhere_mirror_hash_failures_total",
			Help: "Chunks a mirror served whose content did not match their name.",
		}, []string{"mirror"}),
		hedges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nowhere_hedged_requests_total",
			Help: "Requests repeated on a second mirror because the first was slower than usual.",
		}),
		hedgeWins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nowhere_hedge_wins_total",
			Help: "Hedged requests whose second request answered first.",
		}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nowhere_failovers_total",
			Help: "Requests moved to another mirror after a failure.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nowhere_fetches_waiting",
			Help: "Fetches waiting for any mirror to come back (every mirror failed them).",
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nowhere_cache_hits_total",
			Help: "Chunks served from the on-disk cache.",
		}),
		cacheMiss: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nowhere_cache_misses_total",
			Help: "Chunks not in the on-disk cache (fetched from mirrors).",
		}),
		cacheEvict: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nowhere_cache_evictions_total",
			Help: "Chunks evicted from the on-disk cache to stay within its quota.",
		}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nowhere_cache_bytes",
			Help: "Bytes of chunks in the on-disk cache.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.bytes, m.latency, m.hashFails, m.hedges, m.hedgeWins,
			m.failovers, m.waiting, m.cacheHits, m.cacheMiss, m.cacheEvict, m.cacheBytes)
	}
	return m
}

func (m *Store) Request(mirror, result string, bytes int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(mirror, result).Inc()
	if result == "ok" {
		m.bytes.WithLabelValues(mirror).Add(float64(bytes))
		m.latency.WithLabelValues(mirror).Observe(d.Seconds())
	}
	if result == "corrupt" {
		m.hashFails.WithLabelValues(mirror).Inc()
	}
}

// MirrorAdded starts a mirror's series at zero, so a mirror that never failed shows 0 hash
// failures instead of no series at all (a dashboard or alert cannot tell absent from
// healthy). Peers come and go and are left out: their series appear with their traffic.
func (m *Store) MirrorAdded(name string) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(name, "ok")
	m.requests.WithLabelValues(name, "error")
	m.bytes.WithLabelValues(name)
	m.latency.WithLabelValues(name)
	m.hashFails.WithLabelValues(name)
}

func (m *Store) Hedge(won bool) {
	if m == nil {
		return
	}
	if won {
		m.hedgeWins.Inc()
	} else {
		m.hedges.Inc()
	}
}

func (m *Store) Failover() {
	if m != nil {
		m.failovers.Inc()
	}
}

func (m *Store) Waiting(delta int) {
	if m != nil {
		m.waiting.Add(float64(delta))
	}
}

func (m *Store) CacheLookup(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMiss.Inc()
	}
}

func (m *Store) CacheSize(bytes int64, evicted int) {
	if m == nil {
		return
	}
	m.cacheBytes.Set(float64(bytes))
	m.cacheEvict.Add(float64(evicted))
}

// Accessors for tests and status output.

// HashFailures returns the counter of corrupt chunks from mirror.
func (m *Store) HashFailures(mirror string) prometheus.Counter {
	return m.hashFails.WithLabelValues(mirror)
}

// Hedges returns the counter of hedged requests.
func (m *Store) Hedges() prometheus.Counter { return m.hedges }

// HedgeWins returns the counter of hedges that answered first.
func (m *Store) HedgeWins() prometheus.Counter { return m.hedgeWins }

// Failovers returns the counter of requests moved to another mirror.
func (m *Store) Failovers() prometheus.Counter { return m.failovers }

// FetchesWaiting returns the gauge of fetches waiting for any mirror.
func (m *Store) FetchesWaiting() prometheus.Gauge { return m.waiting }

// CacheHits and CacheMisses return the disk cache counters.
func (m *Store) CacheHits() prometheus.Counter   { return m.cacheHits }
func (m *Store) CacheMisses() prometheus.Counter { return m.cacheMiss }
