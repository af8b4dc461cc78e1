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

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Options tune a Reader. Zero values take the defaults.
type Options struct {
	CacheBytes int64 // memory for verified chunks (default 128 MiB)
	ReadAhead  int64 // most bytes fetched ahead of a sequential stream (default 8 MiB; <0 disables)
	Parallel   int   // most fetches in flight for read-ahead (default 32)
}

// Reader is an io.ReaderAt over an image.
type Reader struct {
	ix    *index.Index
	f     store.Fetcher
	cache *lru
	opt   Options

	mu      sync.Mutex
	flights map[chunk.ID]*flight
	streams [8]stream
	tick    uint64

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
	Waiting               atomic.Int64 // reads waiting on a fetch right now
}

// StatsSnapshot is a plain copy of Stats.
type StatsSnapshot struct {
	Reads, ReadBytes, Fetches, FetchedBytes, FetchedPlain, Hits, Misses, Prefetches, Errors, Waiting int64
}

type stream struct {
	end    int64 // where the last read of the stream ended
	window int64 // current read-ahead, doubling while the stream stays sequential
	ahead  int64 // read-ahead has been started for the chunks before this offset
	used   uint64
}

// flight is one fetch, shared by everyone who wants that chunk at the same time. It is
// cancelled when the last waiter gives up, so a cancelled read cancels its HTTP request.
type flight struct {
	done    chan struct{}
	data    []byte
	err     error
	waiters int
	cancel  context.CancelFunc
}

// NewReader returns a Reader for ix whose chunks come from f.
func NewReader(ix *index.Index, f store.Fetcher, opt Options) *Reader {
	if opt.CacheBytes <= 0 {
		opt.CacheBytes = 128 << 20
	}
	if opt.ReadAhead == 0 {
		opt.ReadAhead = 8 << 20
	}
	if opt.Parallel <= 0 {
		opt.Parallel = 32
	}
	return &Reader{
		ix: ix, f: f, opt: opt,
		cache:         newLRU(opt.CacheBytes),
		flights:       make(map[chunk.ID]*flight),
		prefetchSlots: make(chan struct{}, opt.Parallel),
	}
}

// Size returns the image size.
func (r *Reader) Size() int64 { return r.ix.Size }

// Index returns the index the reader serves.
func (r *Reader) Index() *index.Index { return r.ix }

// Snapshot returns the current counters.
func (r *Reader) Snapshot() StatsSnapshot {
	s := &r.stats
	return StatsSnapshot{s.Reads.Load(), s.ReadBytes.Load(), s.Fetches.Load(), s.FetchedBytes.Load(),
		s.FetchedPlain.Load(), s.Hits.Load(), s.Misses.Load(), s.Prefetches.Load(), s.Errors.Load(), s.Waiting.Load()}
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
	var waitBuf [inlineEntries]*flight
	datas, waits := dataBuf[:], waitBuf[:]
	if count := last - first + 1; count > inlineEntries {
		datas, waits = make([][]byte, count), make([]*flight, count)
	}
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
		waits[i-first] = r.join(*e, false)
		r.stats.Misses.Add(1)
	}
	r.readAhead(off, int64(n), last)

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
	}
	r.stats.ReadBytes.Add(int64(done))
	return done, eof
}

// wait returns the verified plain bytes a flight fetched.
func (r *Reader) wait(ctx context.Context, fl *flight) ([]byte, error) {
	r.stats.Waiting.Add(1)
	defer r.stats.Waiting.Add(-1)
	select {
	case <-fl.done:
		return fl.data, fl.err
	case <-ctx.Done():
		r.leave(fl)
		return nil, ctx.Err()
	}
}

// release lets go of flights a failed read will no longer wait for.
func (r *Reader) release(fls []*flight) {
	for _, fl := range fls {
		if fl != nil {
			r.leave(fl)
		}
	}
}

// join returns the flight fetching e, starting one if none runs. A prefetch join does not
// count as a waiter: nobody is blocked on it, and it must not keep a cancelled read alive.
func (r *Reader) join(e index.Entry, prefetch bool) *flight {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A flight whose waiters all left is being cancelled: start afresh instead of joining it.
	if fl, ok := r.flights[e.ID]; ok && fl.waiters > 0 {
		if !prefetch {
			fl.waiters++
		}
		return fl
	}
	// A fetch that finished between the caller's cache check and now has put its chunk in
	// the cache before leaving r.flights (under r.mu): use it instead of fetching again.
	if data, ok := r.cache.get(e.ID); ok {
		fl := &flight{done: make(chan struct{}), data: data, cancel: func() {}}
		close(fl.done)
		return fl
	}
	ctx, cancel := context.WithCancel(context.Background())
	fl := &flight{done: make(chan struct{}), cancel: cancel}
	if !prefetch {
		fl.waiters = 1
	} else {
		fl.waiters = 1 << 30 // read-ahead runs to completion
	}
	r.flights[e.ID] = fl
	go r.fetch(ctx, e, fl)
	return fl
}

func (r *Reader) leave(fl *flight) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fl.waiters--
	if fl.waiters == 0 {
		fl.cancel()
	}
}

func (r *Reader) fetch(ctx context.Context, e index.Entry, fl *flight) {
	defer fl.cancel()
	got, err := r.f.Fetch(ctx, chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored})
	if err == nil && len(got.Plain) != int(e.Len) {
		err = fmt.Errorf("chunk %s: %w: fetcher returned %d bytes, want %d", e.ID, chunk.ErrCorrupt, len(got.Plain), e.Len)
	}
	if err == nil {
		r.stats.Fetches.Add(1)
		r.stats.FetchedBytes.Add(int64(len(got.Raw)))
		r.stats.FetchedPlain.Add(int64(len(got.Plain)))
		r.cache.add(e.ID, got.Plain)
		fl.data = got.Plain
	} else {
		fl.err = fmt.Errorf("image %s at %d: %w", r.ix.Name, e.Off, err)
		if errors.Is(err, context.Canceled) {
			fl.err = err
		}
	}
	r.mu.Lock()
	if r.flights[e.ID] == fl {
		delete(r.flights, e.ID)
	}
	r.mu.Unlock()
	close(fl.done)
}

// readAhead detects sequential streams (a read starting where an earlier one ended) and
// fetches the chunks after the read in the background, doubling the window while the
// stream stays sequential. It never blocks the read: when all prefetch slots are busy it
// skips. Each stream remembers how far read-ahead got, so a read looks only at the chunks
// its window newly covers, not at the whole window again.
func (r *Reader) readAhead(off, n int64, last int) {
	if r.opt.ReadAhead < 0 {
		return
	}
	r.mu.Lock()
	r.tick++
	var s *stream
	for i := range r.streams {
		st := &r.streams[i]
		if st.used != 0 && off >= st.end-128<<10 && off <= st.end+128<<10 {
			s = st
			break
		}
	}
	if s == nil { // a new stream replaces the least recently used one
		s = &r.streams[0]
		for i := range r.streams {
			if r.streams[i].used < s.used {
				s = &r.streams[i]
			}
		}
		*s = stream{}
	} else if s.window == 0 {
		s.window = 256 << 10
	} else if s.window < r.opt.ReadAhead {
		s.window *= 2
	}
	s.end, s.used = off+n, r.tick
	window, ahead := s.window, s.ahead
	r.mu.Unlock()
	if window == 0 {
		return
	}
	entries := r.ix.Entries
	limit := off + n + window
	from := last + 1
	if ahead > off+n && ahead < limit {
		from = max(from, r.ix.Find(ahead))
	} else if ahead >= limit {
		return
	}
	reached := int64(-1)
	for i := from; i < len(entries) && entries[i].Off < limit; i++ {
		e := entries[i]
		if !e.Zero && !r.cache.contains(e.ID) && !r.busy(e.ID) {
			select {
			case r.prefetchSlots <- struct{}{}:
			default:
				i = len(entries) // all slots busy: try again on the next read
				continue
			}
			r.stats.Prefetches.Add(1)
			fl := r.join(e, true)
			go func() { <-fl.done; <-r.prefetchSlots }()
		}
		reached = e.End()
	}
	if reached > 0 {
		r.mu.Lock()
		if s.used == r.tick || s.end == off+n { // still our stream
			s.ahead = max(s.ahead, reached)
		}
		r.mu.Unlock()
	}
}

// busy reports whether a fetch of id is in flight.
func (r *Reader) busy(id chunk.ID) bool {
	r.mu.Lock()
	_, ok := r.flights[id]
	r.mu.Unlock()
	return ok
}
