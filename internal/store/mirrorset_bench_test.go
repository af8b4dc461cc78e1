package store_test

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// linkMirror is a store served on loopback through a simulated network link: every
// request waits latency before its answer starts (the round trip of a WAN), and all
// answers share one uplink of bandwidth bytes/s (the mirror's capacity). A fraction
// spikeP of requests waits spike more (a congested moment), for hedging.
type linkMirror struct {
	url string
	srv *http.Server
	ln  net.Listener
}

type linkSpec struct {
	latency   time.Duration
	bandwidth int // bytes/s
	spikeP    float64
	spike     time.Duration
	// tarpitChunks: on a chunk, send the headers, then nothing until the client leaves
	// (probes and metadata are answered as usual).
	tarpitChunks bool
}

// startLinkMirror serves dir through a link of spec; every answer also passes through
// client, the downlink of the one client all mirrors of a run share (nil: unlimited).
func startLinkMirror(b testing.TB, dir string, spec linkSpec, client *rate.Limiter) *linkMirror {
	b.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	const piece = 16 << 10
	link := rate.NewLimiter(rate.Limit(spec.bandwidth), 4*piece)
	h := server.Handler(root)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2)) // each mirror its own spikes
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := spec.latency
		mu.Lock()
		if rng.Float64() < spec.spikeP {
			d += spec.spike
		}
		mu.Unlock()
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		if spec.tarpitChunks && strings.HasPrefix(r.URL.Path, "/chunks/") {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
			return
		}
		h.ServeHTTP(&pacedWriter{ResponseWriter: w, links: []*rate.Limiter{link, client}, ctx: r.Context(), piece: piece}, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	m := &linkMirror{url: "http://" + ln.Addr().String(), srv: srv, ln: ln}
	b.Cleanup(func() { srv.Close() })
	return m
}

// pacedWriter sends the body through the link limiters (nil ones are no limit).
type pacedWriter struct {
	http.ResponseWriter
	links []*rate.Limiter
	ctx   context.Context
	piece int
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), w.piece)
		for _, l := range w.links {
			if l == nil {
				continue
			}
			if err := l.WaitN(w.ctx, k); err != nil {
				return n, err
			}
		}
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

type benchResult struct {
	mbps     float64
	p50, p99 time.Duration
	elapsed  time.Duration // the whole fetch
	max      time.Duration // the longest single fetch
	hedges   float64
}

// fetchAll fetches every chunk once through a fresh mirror set over urls, `parallel` at
// a time (like extract or a reader's read-ahead), and measures throughput and the time
// of each fetch.
func fetchAll(b testing.TB, refs []chunk.Ref, urls []string, parallel int, hedge float64) benchResult {
	b.Helper()
	var stores []store.Store
	for _, u := range urls {
		s, err := store.NewHTTP(u, &http.Client{Transport: store.NewTransport()})
		if err != nil {
			b.Fatal(err)
		}
		stores = append(stores, s)
	}
	m := newObserver()
	set, err := store.NewMirrorSet(stores, store.MirrorOptions{HedgeFraction: hedge, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	defer set.Close()
	set.Probe(context.Background())
	var mu sync.Mutex
	var times []time.Duration
	var bytes int64
	g := new(errgroup.Group)
	g.SetLimit(parallel)
	start := time.Now()
	for _, ref := range refs {
		g.Go(func() error {
			t0 := time.Now()
			f, err := set.Fetch(context.Background(), ref)
			if err != nil {
				return err
			}
			d := time.Since(t0)
			mu.Lock()
			times = append(times, d)
			bytes += int64(len(f.Raw))
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	slices.Sort(times)
	q := func(p float64) time.Duration { return times[int(p*float64(len(times)-1))] }
	return benchResult{mbps: float64(bytes) / el.Seconds() / 1e6, p50: q(0.5), p99: q(0.99), elapsed: el, max: times[len(times)-1],
		hedges: m.Hedges()}
}

// median runs fn three times and returns the run with the median throughput, and the
// median of the p99s (the machine is shared: single runs are noisy).
func median(fn func() benchResult) benchResult {
	var rs []benchResult
	for range 3 {
		rs = append(rs, fn())
	}
	slices.SortFunc(rs, func(a, b benchResult) int { return cmpFloat(a.mbps, b.mbps) })
	out := rs[1]
	p99s := []time.Duration{rs[0].p99, rs[1].p99, rs[2].p99}
	slices.Sort(p99s)
	out.p99 = p99s[1]
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// BenchmarkMirrors measures the mirror set over simulated links (loopback alone has no
// latency and no capacity limit, so it would say nothing):
//
//   - throughput of three equal mirrors against one (the baseline);
//   - throughput when one of the three is 10x slower (10x the latency, a tenth of the
//     bandwidth), against all three fast;
//   - p99 fetch time on mirrors with latency spikes (3% of requests +300 ms), with and
//     without hedging.
//
// Each fast mirror: 30 ms latency, 5 MB/s uplink; the client: an 8 MB/s downlink, more
// than one mirror can fill but less than two (so several mirrors help, and losing one of
// three to slowness need not hurt). Rates are low enough that a loaded 2-core machine's
// CPU is not what is measured. Fetches: 32 at a time for throughput (a reader's
// read-ahead) with the default hedging; for tail latency 8 at a time (every chunk twice,
// 660 fetches). Each figure is the median of three runs. Run with -benchtime=1x.
func BenchmarkMirrors(b *testing.B) {
	dir, ix, _ := mirrorImage(b, 12<<20, 99)
	refs := refsOf(ix)
	fast := linkSpec{latency: 30 * time.Millisecond, bandwidth: 5e6}
	slow := linkSpec{latency: 300 * time.Millisecond, bandwidth: 0.5e6}
	spiky := linkSpec{latency: 30 * time.Millisecond, bandwidth: 5e6, spikeP: 0.03, spike: 300 * time.Millisecond}
	const downlink = 8e6
	urls := func(specs ...linkSpec) []string {
		client := rate.NewLimiter(downlink, 64<<10)
		var out []string
		for _, s := range specs {
			out = append(out, startLinkMirror(b, dir, s, client).url)
		}
		return out
	}
	run := func(parallel int, hedge float64, specs ...linkSpec) benchResult {
		return median(func() benchResult { return fetchAll(b, refs, urls(specs...), parallel, hedge) })
	}
	twice := append(slices.Clone(refs), refs...) // more samples for the tail
	runTail := func(hedge float64, specs ...linkSpec) benchResult {
		return median(func() benchResult { return fetchAll(b, twice, urls(specs...), 8, hedge) })
	}
	for b.Loop() {
		one := run(32, 0, fast)
		three := run(32, 0, fast, fast, fast)
		oneSlow := run(32, 0, slow, fast, fast)
		// Tail latency matters where reads wait on each other (a boot): fewer in flight,
		// so the links are not saturated and a fetch's time is mostly latency.
		noHedge := runTail(-1, spiky, spiky, spiky)
		hedged := runTail(0.05, spiky, spiky, spiky)
		b.ReportMetric(one.mbps, "1mirror_MB/s")
		b.ReportMetric(three.mbps, "3mirrors_MB/s")
		b.ReportMetric(three.mbps/one.mbps, "3vs1_x")
		b.ReportMetric(oneSlow.mbps, "1slowof3_MB/s")
		b.ReportMetric(three.mbps/oneSlow.mbps, "allfast/1slow_x")
		b.ReportMetric(float64(noHedge.p99.Microseconds())/1000, "p99_nohedge_ms")
		b.ReportMetric(float64(hedged.p99.Microseconds())/1000, "p99_hedged_ms")
		b.ReportMetric(float64(noHedge.p99)/float64(hedged.p99), "p99_nohedge/hedged_x")
		b.ReportMetric(hedged.hedges/float64(len(twice)), "hedges/request")
		b.Logf("chunks %d; one %.1f MB/s; three %.1f MB/s (%.2fx); one slow of three %.1f MB/s (all fast is %.2fx); "+
			"spiky p50/p99 %s/%s without hedging, %s/%s with (%.0f hedges)",
			len(refs), one.mbps, three.mbps, three.mbps/one.mbps, oneSlow.mbps, three.mbps/oneSlow.mbps,
			noHedge.p50.Round(time.Millisecond), noHedge.p99.Round(time.Millisecond),
			hedged.p50.Round(time.Millisecond), hedged.p99.Round(time.Millisecond), hedged.hedges)
	}
}
