package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nowhere-boot/nowhere/internal/metrics"
)

// TestStoreSeriesStartAtZero: each mirror's series exist from when it joins, at zero, so
// a scrape tells a mirror that never served a corrupt chunk from a metric that is missing.
func TestStoreSeriesStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewStore(reg)
	a, b := "http://a.example", "http://b.example"
	m.MirrorAdded(a)
	m.MirrorAdded(b)
	for name, want := range map[string]int{
		"nowhere_mirror_hash_failures_total": 2,
		"nowhere_mirror_bytes_total":         2,
		"nowhere_mirror_request_seconds":     2,
		"nowhere_mirror_requests_total":      4, // ok and error per mirror
	} {
		if n := testutil.CollectAndCount(reg, name); n != want {
			t.Errorf("%s: %d series before any request, want %d", name, n, want)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP nowhere_mirror_hash_failures_total Chunks a mirror served whose content did not match their name.
# TYPE nowhere_mirror_hash_failures_total counter
nowhere_mirror_hash_failures_total{mirror="`+a+`"} 0
nowhere_mirror_hash_failures_total{mirror="`+b+`"} 0
`), "nowhere_mirror_hash_failures_total"); err != nil {
		t.Error(err)
	}
}

// TestStoreEventsBecomeSeries: each event the store reports lands in its series, under
// the names and labels docs/mirrors.md lists.
func TestStoreEventsBecomeSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewStore(reg)
	const a = "http://a.example"
	m.Request(a, "ok", 1000, 3*time.Millisecond)
	m.Request(a, "corrupt", 0, time.Millisecond)
	m.Request(a, "miss", 0, time.Millisecond)
	m.Hedge(false)
	m.Hedge(false)
	m.Hedge(true)
	m.Failover()
	m.Waiting(1)
	m.Waiting(1)
	m.Waiting(-1)
	m.CacheLookup(true)
	m.CacheLookup(false)
	m.CacheLookup(false)
	m.CacheSize(4096, 3)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP nowhere_mirror_requests_total Chunk requests sent to each mirror, by result (ok, error, corrupt, cancelled).
# TYPE nowhere_mirror_requests_total counter
nowhere_mirror_requests_total{mirror="`+a+`",result="corrupt"} 1
nowhere_mirror_requests_total{mirror="`+a+`",result="miss"} 1
nowhere_mirror_requests_total{mirror="`+a+`",result="ok"} 1
# HELP nowhere_mirror_bytes_total Verified chunk bytes (as stored, compressed) received from each mirror.
# TYPE nowhere_mirror_bytes_total counter
nowhere_mirror_bytes_total{mirror="`+a+`"} 1000
# HELP nowhere_mirror_hash_failures_total Chunks a mirror served whose content did not match their name.
# TYPE nowhere_mirror_hash_failures_total counter
nowhere_mirror_hash_failures_total{mirror="`+a+`"} 1
# HELP nowhere_hedged_requests_total Requests repeated on a second mirror because the first was slower than usual.
# TYPE nowhere_hedged_requests_total counter
nowhere_hedged_requests_total 2
# HELP nowhere_hedge_wins_total Hedged requests whose second request answered first.
# TYPE nowhere_hedge_wins_total counter
nowhere_hedge_wins_total 1
# HELP nowhere_failovers_total Requests moved to another mirror after a failure.
# TYPE nowhere_failovers_total counter
nowhere_failovers_total 1
# HELP nowhere_fetches_waiting Fetches waiting for any mirror to come back (every mirror failed them).
# TYPE nowhere_fetches_waiting gauge
nowhere_fetches_waiting 1
# HELP nowhere_cache_hits_total Chunks served from the on-disk cache.
# TYPE nowhere_cache_hits_total counter
nowhere_cache_hits_total 1
# HELP nowhere_cache_misses_total Chunks not in the on-disk cache (fetched from mirrors).
# TYPE nowhere_cache_misses_total counter
nowhere_cache_misses_total 2
# HELP nowhere_cache_evictions_total Chunks evicted from the on-disk cache to stay within its quota.
# TYPE nowhere_cache_evictions_total counter
nowhere_cache_evictions_total 3
# HELP nowhere_cache_bytes Bytes of chunks in the on-disk cache.
# TYPE nowhere_cache_bytes gauge
nowhere_cache_bytes 4096
`), "nowhere_mirror_requests_total", "nowhere_mirror_bytes_total", "nowhere_mirror_hash_failures_total",
		"nowhere_hedged_requests_total", "nowhere_hedge_wins_total", "nowhere_failovers_total",
		"nowhere_fetches_waiting", "nowhere_cache_hits_total", "nowhere_cache_misses_total",
		"nowhere_cache_evictions_total", "nowhere_cache_bytes"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "nowhere_mirror_request_seconds"); n != 1 {
		t.Errorf("request latency: %d series, want 1 (ok requests only)", n)
	}
}

// A nil *Store, as a store.Observer, records nothing and does not panic.
func TestNilStoreRecordsNothing(t *testing.T) {
	var m *metrics.Store
	m.MirrorAdded("x")
	m.Request("x", "ok", 1, time.Millisecond)
	m.Hedge(true)
	m.Failover()
	m.Waiting(1)
	m.CacheLookup(true)
	m.CacheSize(1, 1)
}
