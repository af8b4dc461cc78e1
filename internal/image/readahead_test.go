package image

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// bootFixture is a 64 MiB image in the chunking pack uses for filesystems without file
// boundaries (cdc:16K:64K:256K), large enough that a boot-like reader touches a fraction
// of it, as a boot touches ~20 MB of a ~200 MB root.
var (
	bootOnce sync.Once
	bootFix  *fixture
	bootErr  error
	bootTmp  string
)

func bootFixture(t testing.TB) *fixture {
	t.Helper()
	bootOnce.Do(func() {
		img := randBytes(7, 64<<20)
		tmp, err := os.MkdirTemp("", "nowhere-image-boot-")
		if err != nil {
			bootErr = err
			return
		}
		bootTmp = tmp // removed by TestMain
		d, err := store.CreateDir(filepath.Join(tmp, "store"))
		if err != nil {
			bootErr = err
			return
		}
		sp, _ := chunk.ParseSpec("cdc:16K:64K:256K")
		res, err := pack.Run(context.Background(), bytes.NewReader(img), d, pack.Options{Name: "boot", Spec: sp})
		if err != nil {
			bootErr = err
			return
		}
		bootFix = &fixture{img: img, dir: d, ix: res.Index}
	})
	if bootErr != nil {
		t.Fatal(bootErr)
	}
	return bootFix
}

// span is one read of a replayed pattern.
type span struct{ off, n int64 }

// bootLikeReads is a synthetic boot (the repository keeps no recorded trace): what the
// loop-mounted root's filesystem asks of the image file while init starts services:
// mostly small reads at random places (inodes, directories, extent blocks, small files),
// many short files read in one to three 128 KiB requests, and now and then a binary or
// library read in 4 to 12 of them.
func bootLikeReads(size int64, seed uint64) []span {
	rng := rand.New(rand.NewPCG(seed, 1))
	var reads []span
	page := func(off int64) int64 { return off &^ 4095 }
	for range 400 {
		off := page(rng.Int64N(size - 2<<20))
		switch x := rng.IntN(100); {
		case x < 65:
			reads = append(reads, span{off, int64(1+rng.IntN(16)) * 4096})
		case x < 95:
			for i := range int64(1 + rng.IntN(3)) {
				reads = append(reads, span{off + i*128<<10, 128 << 10})
			}
		default:
			for i := range int64(4 + rng.IntN(9)) {
				reads = append(reads, span{off + i*128<<10, 128 << 10})
			}
		}
	}
	return reads
}

// replay reads the spans one after the other, letting read-ahead settle after each (so
// the bytes fetched do not depend on timing), and returns the reader's counters.
func replay(t testing.TB, r *Reader, f *fixture, reads []span) StatsSnapshot {
	for _, s := range reads {
		p := make([]byte, s.n)
		n, err := r.ReadAt(p, s.off)
		if err != nil || !bytes.Equal(p[:n], f.img[s.off:s.off+int64(n)]) {
			t.Fatalf("read at %d: %d bytes, %v", s.off, n, err)
		}
		for !r.readAheadIdle() {
			time.Sleep(100 * time.Microsecond)
		}
	}
	return r.Snapshot()
}

// Read-ahead staying off a boot-like random reader: with the default (8 MiB cap, no
// link measured yet, so the cap alone bounds the window) the reader fetches at most 1.15x
// the bytes it fetches with read-ahead off.
func TestReadAheadStaysOffBootLikeReads(t *testing.T) {
	f := bootFixture(t)
	for seed := uint64(1); seed <= 3; seed++ {
		reads := bootLikeReads(int64(len(f.img)), seed)
		off := replay(t, NewReader(f.ix, store.Verify(f.dir), Options{ReadAhead: -1}), f, reads)
		on := replay(t, NewReader(f.ix, store.Verify(f.dir), Options{}), f, reads)
		ratio := float64(on.FetchedPlain) / float64(off.FetchedPlain)
		t.Logf("seed %d: %d reads; fetched %d bytes with read-ahead, %d without: %.3fx (%d prefetches)",
			seed, len(reads), on.FetchedPlain, off.FetchedPlain, ratio, on.Prefetches)
		if ratio > 1.15 {
			t.Errorf("seed %d: read-ahead fetched %.3fx the bytes of no read-ahead, want <= 1.15x", seed, ratio)
		}
	}
}

// A long sequential read grows the window: no read-ahead until the stream is sustained,
// then a window that only grows while the reads stay sequential, fetching ahead so the
// later reads wait for nothing; a jump starts over with none.
func TestReadAheadGrowsOnSustainedStream(t *testing.T) {
	f := bootFixture(t)
	r := NewReader(f.ix, store.Verify(f.dir), Options{})
	const n = 128 << 10
	var windows []int64
	for i := int64(0); i < 64; i++ {
		before := r.Snapshot()
		replay(t, r, f, []span{{i * n, n}})
		after := r.Snapshot()
		r.mu.Lock()
		w := r.streams[0].window // the one stream
		r.mu.Unlock()
		windows = append(windows, w)
		if i < sustainedReads-1 && after.Prefetches != 0 {
			t.Fatalf("read %d of the stream started read-ahead (%d prefetches): want none before %d reads in a row", i+1, after.Prefetches, sustainedReads)
		}
		if i >= 16 && after.Misses != before.Misses {
			t.Errorf("read %d of a long sequential stream waited for %d fetches: read-ahead did not keep ahead", i+1, after.Misses-before.Misses)
		}
	}
	for i := 1; i < len(windows); i++ {
		if windows[i] < windows[i-1] {
			t.Fatalf("the window shrank on a sequential stream: %v", windows)
		}
	}
	if last := windows[len(windows)-1]; last < 4*n || r.Snapshot().Prefetches == 0 {
		t.Fatalf("after 8 MiB read sequentially the window is %d bytes (%d prefetches); want it grown to >= %d", last, r.Snapshot().Prefetches, 4*n)
	}
	t.Logf("windows: %v", windows)

	// A jump far away: a new stream, no read-ahead from it until it is sustained.
	before := r.Snapshot().Prefetches
	replay(t, r, f, []span{{40 << 20, n}, {40<<20 + n, n}})
	if got := r.Snapshot().Prefetches; got != before {
		t.Errorf("two reads after a jump started %d prefetches", got-before)
	}
}

// The window is sized by the link: 4x the bandwidth-delay product the mirrors measure, or
// 100 ms of its throughput if more, at least minLinkWindow, at most Options.ReadAhead.
func TestReadAheadWindowCapFollowsTheLink(t *testing.T) {
	f := sharedFixture(t)
	link := func(thr float64, lat time.Duration) func() (float64, time.Duration) {
		return func() (float64, time.Duration) { return thr, lat }
	}
	for _, c := range []struct {
		name string
		opt  Options
		want int64
	}{
		{"no link", Options{}, DefaultReadAhead},
		{"not measured yet", Options{Link: link(0, 0)}, DefaultReadAhead},
		{"100 Mbit/s, 80 ms", Options{Link: link(12.5e6, 80*time.Millisecond)}, 4 * 1_000_000},
		{"1 Gbit/s, 20 ms", Options{Link: link(125e6, 20*time.Millisecond)}, DefaultReadAhead},
		{"loopback", Options{Link: link(1e9, 100*time.Microsecond)}, DefaultReadAhead}, // 100 ms of it
		{"a slow LAN", Options{Link: link(10e6, 100*time.Microsecond)}, minLinkWindow},
		{"--readahead 1M", Options{ReadAhead: 1 << 20, Link: link(125e6, 20*time.Millisecond)}, 1 << 20},
	} {
		r := NewReader(f.ix, store.Verify(f.dir), c.opt)
		r.mu.Lock()
		got := r.windowCap()
		r.mu.Unlock()
		if got != c.want {
			t.Errorf("%s: window cap %d, want %d", c.name, got, c.want)
		}
	}
}

// holding is the real fetcher with each fetch held until the test releases it, and the
// order in which fetches started (instrumentation: the bytes come from the store).
type holding struct {
	f  store.Fetcher
	mu sync.Mutex
	on bool
	// started lists the chunks whose fetch started, in order; held the ones waiting.
	started []chunk.ID
	held    map[chunk.ID]chan struct{}
}

func (h *holding) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	h.mu.Lock()
	h.started = append(h.started, ref.ID)
	var gate chan struct{}
	if h.on {
		gate = make(chan struct{})
		h.held[ref.ID] = gate
	}
	h.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-time.After(30 * time.Second): // hang guard
		}
	}
	return h.f.Fetch(ctx, ref)
}

func (h *holding) release(id chunk.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.held[id])
	delete(h.held, id)
}

func (h *holding) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.started)
}

// An on-demand read is never delayed behind read-ahead: once a read's own fetch has
// started, read-ahead starts no fetch until it is done (the read competes with at most
// the read-ahead fetches already in flight, never with new ones).
func TestReadAheadYieldsToReads(t *testing.T) {
	f := sharedFixture(t)
	h := &holding{f: store.Verify(f.dir), held: map[chunk.ID]chan struct{}{}}
	r := NewReader(f.ix, h, Options{Parallel: 1}) // one read-ahead fetch at a time
	const n = 64 << 10
	for i := int64(0); i < sustainedReads; i++ { // a sustained stream at the image's start
		replay(t, r, f, []span{{i * n, n}})
	}
	// From now on every fetch is held. The next read of the stream moves its target on;
	// its feeder starts one fetch (Parallel 1) and waits for the slot.
	h.mu.Lock()
	h.on = true
	h.mu.Unlock()
	k := h.count()
	go r.ReadAt(make([]byte, n), sustainedReads*n)
	waitFor(t, "the first read-ahead fetch", func() bool { return h.count() > k })
	// A read far away, of one chunk nothing has fetched: its fetch starts at once.
	far := f.ix.Entries[f.ix.Find(7<<20)]
	done := make(chan error, 1)
	go func() {
		_, err := r.ReadAt(make([]byte, 1), far.Off)
		done <- err
	}()
	waitFor(t, "the read's own fetch", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.held[far.ID] != nil
	})
	// Let every read-ahead fetch go: the feeder gets its slot back, and must pause
	// rather than start another fetch while the read's fetch runs.
	startedBefore := h.count()
	h.mu.Lock()
	var ahead []chunk.ID
	for id := range h.held {
		if id != far.ID {
			ahead = append(ahead, id)
		}
	}
	h.mu.Unlock()
	for _, id := range ahead {
		h.release(id)
	}
	waitFor(t, "the feeder to pause or fetch", func() bool {
		r.mu.Lock()
		paused := r.pausedFeeders
		r.mu.Unlock()
		return paused > 0 || h.count() > startedBefore
	})
	if got := h.count(); got != startedBefore {
		t.Fatalf("read-ahead started %d fetches while a read's fetch was waiting", got-startedBefore)
	}
	// The read's fetch done, read-ahead goes on.
	h.mu.Lock()
	h.on = false
	h.mu.Unlock()
	h.release(far.ID)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "read-ahead to go on", func() bool { return h.count() > startedBefore })
	waitFor(t, "read-ahead to finish", r.readAheadIdle)
}

// planning is the real fetcher with a Planner's answer: the chunks in planned are "on
// their way" by other means, and fetched records what was asked of it.
type planning struct {
	*holding
	planned map[chunk.ID]bool
}

func (p *planning) Planned(id chunk.ID) bool { return p.planned[id] }

// Read-ahead leaves the chunks the fetcher below plans to bring (the boot profile's queue)
// to it, and still fetches the others ahead.
func TestReadAheadSkipsPlannedChunks(t *testing.T) {
	f := bootFixture(t)
	pl := &planning{holding: &holding{f: store.Verify(f.dir), held: map[chunk.ID]chan struct{}{}}, planned: map[chunk.ID]bool{}}
	const n = 128 << 10
	const streamEnd = 8 << 20
	// Every other chunk of the 2 MiB after the stream's end is planned.
	var ahead []chunk.ID
	for i := f.ix.Find(streamEnd); f.ix.Entries[i].Off < streamEnd+2<<20; i++ {
		if e := f.ix.Entries[i]; !e.Zero && e.Off >= streamEnd {
			ahead = append(ahead, e.ID)
			pl.planned[e.ID] = len(ahead)%2 == 0
		}
	}
	r := NewReader(f.ix, pl, Options{})
	for off := int64(0); off < streamEnd; off += n {
		replay(t, r, f, []span{{off, n}})
	}
	fetched := map[chunk.ID]int{}
	for _, id := range pl.started {
		fetched[id]++
	}
	var planned, others int
	for _, id := range ahead {
		switch {
		case pl.planned[id] && fetched[id] > 0:
			planned++
		case !pl.planned[id] && fetched[id] > 0:
			others++
		}
	}
	if planned != 0 || others == 0 {
		t.Fatalf("read ahead of the stream: %d planned chunks fetched (want 0), %d others (want > 0)", planned, others)
	}
}
