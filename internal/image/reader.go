// Package image gives random access to an image described by an index: ReadAt fetches the
// chunks a read needs (all of them in parallel), keeps verified chunks in memory, fetches
// each chunk once however many readers want it, and reads ahead on sequential streams.
package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/flight"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Options tune a Reader. Zero values take the defaults.
type Options struct {
	CacheBytes int64 // memory for verified chunks (default 128 MiB)
	// ReadAhead caps the bytes fetched ahead of a sustained sequential stream (default 8
	// MiB; <0 disables). The window starts at none and grows only while a stream stays
	// sequential (readahead.go); this is its ceiling, not its size.
	ReadAhead int64
	Parallel  int // most fetches in flight for read-ahead (default 32)
	// Link returns what the mirror set measures of the link: throughput (bytes/s) and
	// latency. Read-ahead sizes its window from their product (LinkOf). nil: unknown, the
	// window may grow to ReadAhead.
	Link func() (throughput float64, latency time.Duration)
	// FailMemory is how long a chunk whose fetch just failed fails again at once, without
	// a new fetch: the kernel retries a failed page read (read-ahead, then the read itself),
	// and each retry would wait the whole timeout again (a --timeout D read took 2-3 D). 0:
	// no memory.
	FailMemory time.Duration
}

// DefaultReadAhead is the read-ahead cap of mount and the boot daemon alike: the policy
// (readahead.go) keeps a boot's reads from growing a window at all, and a long sequential
// read reaches the cap only when the link's bandwidth-delay product calls for it.
const DefaultReadAhead = 8 << 20

// maxFailed bounds the chunks whose failure a Reader remembers.
const maxFailed = 4096

// failure is a fetch that failed, and when.
type failure struct {
	err error
	at  time.Time
}

// Reader is an io.ReaderAt over an image.
type Reader struct {
	ix    *index.Index
	f     store.Fetcher
	cache *lru
	opt   Options

	mu            sync.Mutex
	flights       flight.Group[chunk.ID, []byte] // one fetch per chunk (join)
	failed        map[chunk.ID]failure           // recent failures (Options.FailMemory)
	streams       [8]stream
	tick          uint64
	demand        int           // fetches started by reads (not read-ahead) still running
	wake          chan struct{} // closed when demand drops to 0: paused feeders go on
	pausedFeeders int           // feeders waiting for demand to drop to 0
	link          linkCache
	follow        func(off, n int64) // the read-ahead policy: readAhead (a benchmark swaps in the old one as its baseline)

	prefetchSlots chan struct{}
	stats         Stats
}

// Stats count what a Reader did. Read them with Snapshot.
type Stats struct {
	Reads, ReadBytes      atomic.Int64 // ReadAt calls and bytes returned
	Fetches, FetchedBytes atomic.Int64 // chunks fetched below the memory cache, their stored size
	FetchedPlain          atomic.Int64 // ... and their plain size
	Hits, Misses          atomic.Int64 // memory cache
	Prefetches            atomic.Int64 // fetches started by read-ahead
	Errors                atomic.Int64 // reads that failed
	ZeroCopy              atomic.Int64 // reads answered with views of the chunks (ReadSlices), not copies
	Waiting               atomic.Int64 // reads waiting on a fetch right now
}

// StatsSnapshot is a plain copy of Stats.
type StatsSnapshot struct {
	Reads, ReadBytes, Fetches, FetchedBytes, FetchedPlain, Hits, Misses, Prefetches, Errors, Waiting int64
	ZeroCopy                                                                                         int64
}

// call is one fetch, shared by everyone who wants that chunk at the same time. It is
// cancelled when the last waiter gives up, so a cancelled read cancels its HTTP request.
type call = flight.Call[chunk.ID, []byte]

// NewReader returns a Reader for ix whose chunks come from f.
func NewReader(ix *index.Index, f store.Fetcher, opt Options) *Reader {
	if opt.CacheBytes <= 0 {
		opt.CacheBytes = 128 << 20
	}
	if opt.ReadAhead == 0 {
		opt.ReadAhead = DefaultReadAhead
	}
	if opt.Parallel <= 0 {
		opt.Parallel = 32
	}
	r := &Reader{
		ix: ix, f: f, opt: opt,
		cache:         newLRU(opt.CacheBytes),
		failed:        make(map[chunk.ID]failure),
		prefetchSlots: make(chan struct{}, opt.Parallel),
		wake:          make(chan struct{}),
	}
	r.follow = r.readAhead
	return r
}

// Size returns the image size.
func (r *Reader) Size() int64 { return r.ix.Size }

// Index returns the index the reader serves.
func (r *Reader) Index() *index.Index { return r.ix }

// Snapshot returns the current counters.
func (r *Reader) Snapshot() StatsSnapshot {
	s := &r.stats
	return StatsSnapshot{s.Reads.Load(), s.ReadBytes.Load(), s.Fetches.Load(), s.FetchedBytes.Load(),
		s.FetchedPlain.Load(), s.Hits.Load(), s.Misses.Load(), s.Prefetches.Load(), s.Errors.Load(), s.Waiting.Load(), s.ZeroCopy.Load()}
}

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	return r.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext reads like ReadAt; cancelling ctx abandons the read (and fetches nobody
// else is waiting for).
func (r *Reader) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	n := 0
	return r.view(ctx, off, len(p), func(b []byte, zeros int) {
		if b == nil {
			clear(p[n : n+zeros])
			n += zeros
			return
		}
		n += copy(p[n:], b)
	})
}

// zeroBuf backs the views ReadSlices gives for zero runs. Nothing ever writes to it.
var zeroBuf = make([]byte, 1<<20)

// ReadSlices reads like ReadAtContext but copies nothing: it appends to vecs views of the
// image's bytes from off, up to n of them: slices of verified chunks in the memory cache
// and of a shared zero buffer. It returns the extended vecs and the number of bytes they
// hold. The views are read-only and stay valid after the call (the cache drops chunks but
// never reuses their memory), so a FUSE reply can be written straight from them.
func (r *Reader) ReadSlices(ctx context.Context, vecs [][]byte, off int64, n int) ([][]byte, int, error) {
	r.stats.ZeroCopy.Add(1) // counted so tests and metrics can tell the composed stacks take this path
	got, err := r.view(ctx, off, n, func(b []byte, zeros int) {
		if b != nil {
			vecs = append(vecs, b)
			return
		}
		for zeros > 0 {
			k := min(zeros, len(zeroBuf))
			vecs = append(vecs, zeroBuf[:k])
			zeros -= k
		}
	})
	return vecs, got, err
}

// inlineEntries is how many chunks a read may span before its bookkeeping needs the heap
// (a 1 MiB read spans ~17 chunks of the default 64 KiB average).
const inlineEntries = 32

// view finds the bytes [off, off+n) and hands them to emit in order: a chunk's bytes
// (read-only), or (nil, count) for a run of zeros. It returns how many bytes it emitted.
func (r *Reader) view(ctx context.Context, off int64, n int, emit func(b []byte, zeros int)) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= r.ix.Size {
		return 0, io.EOF
	}
	var eof error
	if rest := r.ix.Size - off; int64(n) > rest {
		n, eof = int(rest), io.EOF
	}
	r.stats.Reads.Add(1)
	if n <= 0 {
		return 0, eof
	}
	entries := r.ix.Entries
	first := r.ix.Find(off)
	last := r.ix.Find(off + int64(n) - 1)

	// Take what is cached now (a slice stays valid even if the cache drops it meanwhile)
	// and start every fetch this read needs before waiting for any, so a large read costs
	// one round trip, not one per chunk.
	var dataBuf [inlineEntries][]byte
	var waitBuf [inlineEntries]*call
	datas, waits := dataBuf[:], waitBuf[:]
	if count := last - first + 1; count > inlineEntries {
		datas, waits = make([][]byte, count), make([]*call, count)
	}
	urgent, checked := true, false
	for i := first; i <= last; i++ {
		e := &entries[i]
		if e.Zero {
			continue
		}
		if d, ok := r.cache.get(e.ID); ok {
			datas[i-first] = d
			r.stats.Hits.Add(1)
			continue
		}
		if !checked { // once per read, and only when it misses
			urgent, checked = !r.continuesStream(off, int64(n)), true
		}
		waits[i-first] = r.join(*e, false, urgent)
		r.stats.Misses.Add(1)
	}
	r.follow(off, int64(n))

	done := 0
	for i := first; i <= last; i++ {
		e := &entries[i]
		lo := off + int64(done) - e.Off // offset inside the entry
		want := min(int64(n-done), int64(e.Len)-lo)
		if e.Zero {
			emit(nil, int(want))
			done += int(want)
			continue
		}
		data := datas[i-first]
		if data == nil {
			d, err := r.wait(ctx, waits[i-first])
			if err != nil {
				r.release(waits[i+1-first : last+1-first])
				r.stats.Errors.Add(1)
				return done, err
			}
			data = d
		}
		emit(data[lo:lo+want], 0)
		done += int(want)
		if lo+want == int64(e.Len) && r.opt.ReadAhead >= 0 {
			// Read to its end: the kernel now caches these bytes (the file is opened
			// with FOPEN_KEEP_CACHE) and a sequential reader has moved on, so this chunk
			// goes first when memory is needed, before chunks fetched ahead and not yet
			// read. (With a 128 MiB cache and a 188 MiB ext4 tree read in jumps, plain
			// LRU evicted read-ahead and fetched 7 % of the chunks twice.)
			r.cache.demote(e.ID)
		}
	}
	r.stats.ReadBytes.Add(int64(done))
	return done, eof
}

// wait returns the verified plain bytes a fetch brought; when ctx ends first it leaves
// the fetch (the last waiter to leave cancels it).
func (r *Reader) wait(ctx context.Context, fl *call) ([]byte, error) {
	r.stats.Waiting.Add(1)
	defer r.stats.Waiting.Add(-1)
	return fl.Wait(ctx)
}

// release lets go of fetches a failed read will no longer wait for.
func (r *Reader) release(fls []*call) {
	for _, fl := range fls {
		if fl != nil {
			fl.Leave()
		}
	}
}

// join returns the fetch of e, starting one if none runs. A prefetch join does not count
// as a waiter: nobody is blocked on it, and it must not keep a cancelled read alive; a
// fetch it starts runs to completion (flight.Group.Detached). An urgent fetch (a read's,
// not one of a read-ahead stream's own reads) pauses read-ahead until it is done
// (readahead.go).
func (r *Reader) join(e index.Entry, prefetch, urgent bool) *call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.joinLocked(e, prefetch, urgent)
}

// joinLocked is join with r.mu held.
func (r *Reader) joinLocked(e index.Entry, prefetch, urgent bool) *call {
	// A running fetch is joined, even of a chunk whose last fetch failed a moment ago. (One
	// whose waiters all left is no longer running: the group forgot it, and the next
	// caller starts afresh.)
	if !r.flights.Running(e.ID) {
		// A chunk that failed a moment ago fails again at once (Options.FailMemory).
		if f, ok := r.failed[e.ID]; ok && !prefetch { // only filled with FailMemory set
			if time.Since(f.at) < r.opt.FailMemory {
				return flight.Finished[chunk.ID, []byte](nil, f.err)
			}
			delete(r.failed, e.ID)
		}
		// A fetch that finished between the caller's cache check and now has put its
		// chunk in the cache before the group forgot it: use it instead of fetching again.
		if data, ok := r.cache.get(e.ID); ok {
			return flight.Finished[chunk.ID, []byte](data, nil)
		}
	}
	demand := !prefetch && urgent
	fetch := func(ctx context.Context) ([]byte, error) { return r.fetch(ctx, e, demand) }
	if prefetch {
		fl, _ := r.flights.Detached(context.Background(), e.ID, fetch)
		return fl
	}
	fl, started := r.flights.Join(context.Background(), e.ID, fetch)
	if started && demand {
		r.demand++ // fetch's demandDone needs r.mu, held here: it cannot come first
	}
	return fl
}

// fetch fetches and verifies e for a call of r.flights. demand: a read's own fetch, which
// read-ahead waits for.
func (r *Reader) fetch(ctx context.Context, e index.Entry, demand bool) ([]byte, error) {
	got, err := r.f.Fetch(ctx, chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored})
	if err == nil && len(got.Plain) != int(e.Len) {
		err = fmt.Errorf("chunk %s: %w: fetcher returned %d bytes, want %d", e.ID, chunk.ErrCorrupt, len(got.Plain), e.Len)
	}
	var data []byte
	if err == nil {
		r.stats.Fetches.Add(1)
		r.stats.FetchedBytes.Add(int64(len(got.Raw)))
		r.stats.FetchedPlain.Add(int64(len(got.Plain)))
		// Cached before the call ends and the group forgets it, so a joiner finds the
		// chunk in one or the other (joinLocked).
		r.cache.add(e.ID, got.Plain)
		data = got.Plain
	} else if !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("image %s at %d: %w", r.ix.Name, e.Off, err)
	}
	r.mu.Lock()
	if demand {
		r.demandDone()
	}
	if err != nil && !errors.Is(err, context.Canceled) && r.opt.FailMemory > 0 {
		if len(r.failed) >= maxFailed {
			clear(r.failed) // a bound, not an LRU: these are seconds-old hints
		}
		// Remembered before the call ends, so no joiner in between starts a new fetch.
		r.failed[e.ID] = failure{err, time.Now()}
	}
	r.mu.Unlock()
	return data, err
}
