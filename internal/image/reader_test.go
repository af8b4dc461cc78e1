package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

func TestReadAtReturnsTheImage(t *testing.T) {
	f := sharedFixture(t)
	for name, opt := range map[string]Options{
		"default":    {},
		"tiny cache": {CacheBytes: 100 << 10}, // constant eviction
		"no ahead":   {ReadAhead: -1},
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(f.ix, store.Verify(f.dir), opt)
			if r.Size() != int64(len(f.img)) || r.Index() != f.ix {
				t.Fatalf("Size %d, image %d", r.Size(), len(f.img))
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for i := 0; i < 300; i++ {
				off := rng.Int64N(int64(len(f.img)))
				n := rng.IntN(1 << uint(rng.IntN(22))) // 0 .. 4 MiB, mostly small
				p := make([]byte, n)
				got, err := r.ReadAt(p, off)
				want := min(n, len(f.img)-int(off))
				if got != want || (err != nil && !(err == io.EOF && int(off)+n >= len(f.img))) {
					t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d", n, off, got, err, want)
				}
				if !bytes.Equal(p[:got], f.img[off:off+int64(got)]) {
					t.Fatalf("ReadAt(%d bytes at %d): wrong bytes", n, off)
				}
			}
			// One read of the whole image spans every chunk and zero run.
			p := make([]byte, len(f.img))
			if n, err := r.ReadAt(p, 0); n != len(p) || (err != nil && err != io.EOF) || !bytes.Equal(p, f.img) {
				t.Fatalf("whole-image read: %d, %v", n, err)
			}
			s := r.Snapshot()
			if s.Reads != 301 || s.Errors != 0 || s.Waiting != 0 {
				t.Fatalf("stats after 301 reads: %+v", s)
			}
		})
	}
}

func TestReadAtEdges(t *testing.T) {
	f := sharedFixture(t)
	r := NewReader(f.ix, store.Verify(f.dir), Options{})
	size := int64(len(f.img))
	p := make([]byte, 1000)
	if n, err := r.ReadAt(p, size); n != 0 || err != io.EOF {
		t.Fatalf("read at Size: %d, %v; want 0, EOF", n, err)
	}
	if n, err := r.ReadAt(p, size+12345); n != 0 || err != io.EOF {
		t.Fatalf("read past Size: %d, %v", n, err)
	}
	if n, err := r.ReadAt(p, size-10); n != 10 || err != io.EOF || !bytes.Equal(p[:10], f.img[size-10:]) {
		t.Fatalf("read across the end: %d, %v; want 10, EOF", n, err)
	}
	if n, err := r.ReadAt(p, size-1000); n != 1000 || (err != nil && err != io.EOF) || !bytes.Equal(p, f.img[size-1000:]) {
		t.Fatalf("read ending at the end: %d, %v", n, err)
	}
	if n, err := r.ReadAt(p, -1); n != 0 || err == nil || err == io.EOF {
		t.Fatalf("negative offset: %d, %v; want an error", n, err)
	}
	for _, e := range f.ix.Entries[:5] {
		if n, err := r.ReadAt(nil, e.Off); n != 0 || err != nil {
			t.Fatalf("empty read at entry start %d: %d, %v", e.Off, n, err)
		}
	}
	// Reads that start and end exactly on entry boundaries, and one byte either side.
	for i, e := range f.ix.Entries[1 : len(f.ix.Entries)-1] {
		for _, off := range []int64{e.Off - 1, e.Off, e.Off + 1} {
			n := int(e.Len) + 1
			q := make([]byte, n)
			got, err := r.ReadAt(q, off)
			if got != n || err != nil || !bytes.Equal(q, f.img[off:off+int64(n)]) {
				t.Fatalf("entry %d boundary read at %d: %d, %v", i+1, off, got, err)
			}
		}
	}
}

// dataEntry returns the first data entry at or after off.
func (f *fixture) dataEntry(t *testing.T, off int64) (int, int64) {
	for i, e := range f.ix.Entries {
		if !e.Zero && e.Off >= off {
			return i, e.Off
		}
	}
	t.Fatal("no data entry")
	return 0, 0
}

// Concurrent readers of one chunk cause one fetch.
func TestSingleFlight(t *testing.T) {
	f := sharedFixture(t)
	_, off := f.dataEntry(t, 1<<20+512<<10)
	c := &counting{f: store.Verify(f.dir), gate: make(chan struct{})}
	r := NewReader(f.ix, c, Options{ReadAhead: -1})
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 100+i)
			if _, err := r.ReadAt(p, off+int64(i)); err != nil || !bytes.Equal(p, f.img[off+int64(i):off+int64(i)+int64(len(p))]) {
				errs <- errors.New("wrong bytes or error")
			}
		}()
	}
	// Every reader is blocked on the one fetch before it is allowed to finish.
	waitFor(t, "all readers waiting", func() bool { return r.Snapshot().Waiting == n })
	if got := c.calls.Load(); got != 1 {
		t.Fatalf("%d readers of one chunk started %d fetches", n, got)
	}
	close(c.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := c.calls.Load(); got != 1 {
		t.Fatalf("%d fetches for one chunk", got)
	}
	// Now cached: more reads fetch nothing.
	p := make([]byte, 10)
	_, _ = r.ReadAt(p, off)
	if c.calls.Load() != 1 || r.Snapshot().Hits == 0 {
		t.Fatalf("cached chunk fetched again: %d calls, %+v", c.calls.Load(), r.Snapshot())
	}
}

// Readers arriving while a fetch completes (not all waiting at once) still share it.
func TestSingleFlightStaggered(t *testing.T) {
	f := sharedFixture(t)
	_, off := f.dataEntry(t, 0)
	dups := 0
	const rounds = 500
	for round := 0; round < rounds; round++ {
		c := &counting{f: store.Verify(f.dir)}
		r := NewReader(f.ix, c, Options{ReadAhead: -1})
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Spread arrivals over the time one fetch takes.
				for i := 0; i < g; i++ {
					runtime.Gosched()
				}
				time.Sleep(time.Duration(g) * 5 * time.Microsecond)
				p := make([]byte, 100)
				if _, err := r.ReadAt(p, off); err != nil || !bytes.Equal(p, f.img[off:off+100]) {
					t.Error("wrong bytes or error")
				}
			}()
		}
		close(start)
		wg.Wait()
		if c.calls.Load() != 1 {
			dups++
		}
	}
	if dups > 0 {
		t.Fatalf("%d of %d rounds fetched one chunk more than once", dups, rounds)
	}
}

// A sequential scan is read ahead: chunks are fetched before the reads that need them.
func TestReadAhead(t *testing.T) {
	f := sharedFixture(t)
	scan := func(opt Options) StatsSnapshot {
		r := NewReader(f.ix, store.Verify(f.dir), opt)
		p := make([]byte, 128<<10)
		for off := int64(0); off < int64(len(f.img)); off += int64(len(p)) {
			n, err := r.ReadAt(p, off)
			if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], f.img[off:off+int64(n)]) {
				t.Fatalf("sequential read at %d: %v", off, err)
			}
			// Let read-ahead finish before the next read, so the comparison does not
			// depend on timing.
			waitFor(t, "read-ahead to finish", r.readAheadIdle)
		}
		return r.Snapshot()
	}
	without := scan(Options{ReadAhead: -1})
	with := scan(Options{})
	t.Logf("without read-ahead: %d waits for fetches; with: %d waits, %d prefetches, %d cache hits", without.Misses, with.Misses, with.Prefetches, with.Hits)
	if without.Prefetches != 0 {
		t.Fatalf("read-ahead disabled but %d prefetches", without.Prefetches)
	}
	if with.Prefetches == 0 || with.Misses*4 > without.Misses {
		t.Fatalf("read-ahead: %d prefetches, %d waits (without read-ahead %d); want most waits gone", with.Prefetches, with.Misses, without.Misses)
	}
	if with.Fetches > without.Fetches+int64(len(f.ix.Entries))/10 {
		t.Fatalf("read-ahead fetched %d chunks, a plain scan %d", with.Fetches, without.Fetches)
	}
}

// readAheadIdle reports whether no feeder runs and no prefetch is in flight.
func (r *Reader) readAheadIdle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.streams {
		if r.streams[i].feeding {
			return false
		}
	}
	return len(r.prefetchSlots) == 0
}

// Cancelling the only reader of a chunk cancels its fetch.
func TestCancelledReadCancelsFetch(t *testing.T) {
	f := sharedFixture(t)
	_, off := f.dataEntry(t, 2<<20)
	c := &counting{f: store.Verify(f.dir), gate: make(chan struct{}), started: make(chan chunk.ID, 10), sawCtx: make(chan error, 10)}
	r := NewReader(f.ix, c, Options{ReadAhead: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.ReadAtContext(ctx, make([]byte, 100), off)
		done <- err
	}()
	<-c.started
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled read did not return")
	}
	select {
	case err := <-c.sawCtx:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("fetch ended with context %v, want it cancelled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fetch nobody waits for was not cancelled")
	}
	// The next read of that chunk starts a fresh fetch and gets the bytes.
	close(c.gate)
	p := make([]byte, 100)
	if _, err := r.ReadAt(p, off); err != nil || !bytes.Equal(p, f.img[off:off+100]) {
		t.Fatalf("read after a cancelled one: %v", err)
	}
}

// Cancelling one of two readers leaves the fetch running for the other.
func TestCancelledReadKeepsSharedFetch(t *testing.T) {
	f := sharedFixture(t)
	_, off := f.dataEntry(t, 2<<20)
	c := &counting{f: store.Verify(f.dir), gate: make(chan struct{}), started: make(chan chunk.ID, 10), sawCtx: make(chan error, 10)}
	r := NewReader(f.ix, c, Options{ReadAhead: -1})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := r.ReadAtContext(ctx, make([]byte, 10), off); first <- err }()
	<-c.started
	second := make(chan error, 1)
	p := make([]byte, 100)
	go func() { _, err := r.ReadAt(p, off); second <- err }()
	waitFor(t, "two readers waiting", func() bool { return r.Snapshot().Waiting == 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled reader: %v", err)
	}
	close(c.gate)
	if err := <-c.sawCtx; err != nil {
		t.Fatalf("shared fetch was cancelled with one reader still waiting: %v", err)
	}
	if err := <-second; err != nil || !bytes.Equal(p, f.img[off:off+100]) {
		t.Fatalf("remaining reader: %v", err)
	}
	if c.calls.Load() != 1 {
		t.Fatalf("%d fetches", c.calls.Load())
	}
}

// A failed fetch gives an error, and the bytes before it; never wrong bytes.
func TestFetchErrorNeverWrongBytes(t *testing.T) {
	f := newFixture(t)
	i, off := f.dataEntry(t, 3<<20)
	bad := f.ix.Entries[i]
	boom := errors.New("mirror unreachable")
	c := &counting{f: store.Verify(f.dir), failID: bad.ID, failErr: boom}
	r := NewReader(f.ix, c, Options{ReadAhead: -1})
	start := off - 50<<10
	p := bytes.Repeat([]byte{0xAA}, 200<<10)
	n, err := r.ReadAt(p, start)
	if !errors.Is(err, boom) || n != int(off-start) {
		t.Fatalf("read over a failing chunk: %d, %v; want %d bytes and the error", n, err, off-start)
	}
	if !bytes.Equal(p[:n], f.img[start:off]) {
		t.Fatal("bytes before the failed chunk are wrong")
	}
	for _, b := range p[n : n+int(bad.Len)] {
		if b != 0xAA {
			t.Fatal("the failed chunk's part of the buffer was written")
		}
	}
	if r.Snapshot().Errors != 1 {
		t.Fatalf("stats: %+v", r.Snapshot())
	}

	// A corrupt chunk file in the store is caught by verification, every time. (The
	// failed read let go of its other chunks' fetches: they must be done before the
	// fetcher changes under them.)
	waitFor(t, "the failed read's other fetches to end", func() bool {
		return r.flights.Active() == 0
	})
	c.failErr = nil
	path := filepath.Join(f.dir.Path(), store.ChunkPath(bad.ID))
	good, _ := os.ReadFile(path)
	if err := os.WriteFile(path, chunk.Encode(nil, make([]byte, bad.Len)), 0o644); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 2; k++ {
		if _, err := r.ReadAt(make([]byte, 10), bad.Off); !errors.Is(err, chunk.ErrCorrupt) {
			t.Fatalf("read of a corrupt chunk: %v; want ErrCorrupt", err)
		}
	}
	// Errors are not cached: once the store is repaired, the read works.
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	q := make([]byte, 10)
	if _, err := r.ReadAt(q, bad.Off); err != nil || !bytes.Equal(q, f.img[bad.Off:bad.Off+10]) {
		t.Fatalf("read after repair: %v", err)
	}
}

// shortFetcher returns chunks of the wrong length, as a buggy fetcher might.
type shortFetcher struct{ f store.Fetcher }

func (s shortFetcher) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	got, err := s.f.Fetch(ctx, ref)
	got.Plain = got.Plain[:len(got.Plain)/2]
	return got, err
}

func TestWrongLengthFromFetcher(t *testing.T) {
	f := sharedFixture(t)
	_, off := f.dataEntry(t, 0)
	r := NewReader(f.ix, shortFetcher{store.Verify(f.dir)}, Options{ReadAhead: -1})
	if _, err := r.ReadAt(make([]byte, 100), off); !errors.Is(err, chunk.ErrCorrupt) {
		t.Fatalf("fetcher returned half a chunk: %v; want ErrCorrupt", err)
	}
}

// A chunk read to its end goes first when the cache needs room (the kernel keeps those
// bytes); a chunk read only in part, or fetched ahead and not read yet, stays.
func TestReadToEndIsEvictedFirst(t *testing.T) {
	f := sharedFixture(t)
	var e0, e1 *index.Entry
	for i := range f.ix.Entries {
		e := &f.ix.Entries[i]
		if e.Zero || e.Len < 8192 {
			continue
		}
		if e0 == nil {
			e0 = e
		} else if e.ID != e0.ID && e.Off > e0.End()+1<<20 { // far: not one stream
			e1 = e
			break
		}
	}
	if e1 == nil {
		t.Fatal("fixture has too few chunks")
	}
	r := NewReader(f.ix, store.Verify(f.dir), Options{ReadAhead: 1 << 20})
	p := make([]byte, 4096)
	if _, err := r.ReadAt(p, e1.Off); err != nil { // the first 4 KiB of e1
		t.Fatal(err)
	}
	if _, err := r.ReadAt(p, e0.End()-4096); err != nil { // then the last 4 KiB of e0
		t.Fatal(err)
	}
	r.cache.mu.Lock()
	back := r.cache.order.Back().Value.(*lruItem).id
	front := r.cache.order.Front().Value.(*lruItem).id
	r.cache.mu.Unlock()
	if back != e0.ID {
		t.Errorf("the chunk read to its end is not the first to go")
	}
	if front != e1.ID {
		t.Errorf("the chunk read in part is not the most recently used")
	}

	c := newLRU(300)
	a, b, d := chunk.Sum([]byte("a")), chunk.Sum([]byte("b")), chunk.Sum([]byte("d"))
	c.add(a, make([]byte, 100))
	c.add(b, make([]byte, 100))
	c.demote(b) // b read to its end: goes before a, older but not read yet
	c.add(d, make([]byte, 150))
	if c.contains(b) || !c.contains(a) || !c.contains(d) {
		t.Errorf("after demoting b and adding d: a %v, b %v, d %v; want b dropped", c.contains(a), c.contains(b), c.contains(d))
	}
}
