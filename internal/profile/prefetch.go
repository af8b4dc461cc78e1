package profile

import (
	"context"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Options tune a Prefetcher. Zero values take the defaults.
type Options struct {
	// Parallel is how many prefetches run at once (default 8: at 100 Mbit/s and 40 ms,
	// eight 64 KiB chunks in flight fill the link).
	Parallel int
	// Budget bounds the plain bytes held for reads that have not come yet (default 128
	// MiB); the queue waits when it is reached.
	Budget int64
	// Linger is how long chunks no read claimed are kept once the queue is done (default
	// 5 minutes; negative: forever). A profile merged from several boots holds chunks this
	// boot may never read.
	Linger time.Duration
}

// Prefetcher is a store.Fetcher that fetches a boot profile's chunks in the background,
// in profile order, and hands them to the reads that want them. Reads always come first:
//
//   - a read whose chunk is prefetched gets it at once; one whose chunk is being
//     prefetched waits for that fetch (it is already on the way);
//   - a read whose chunk is not (yet) prefetched fetches it itself, at once, never queued
//     behind the profile, and that chunk leaves the queue;
//   - while any such read is waiting on the network, no new prefetch starts (those in
//     flight finish), so the read's request competes with at most Parallel others.
type Prefetcher struct {
	next    store.Fetcher
	opt     Options
	queue   []chunk.Ref
	profile map[chunk.ID]bool
	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup
	done    chan struct{}
	start   time.Time

	mu       sync.Mutex
	wake     chan struct{} // closed when a paused queue may go on
	pos      int
	items    map[chunk.ID]*item
	served   map[chunk.ID]bool // chunks reads have had (prefetched or fetched themselves)
	held     int64
	demand   int
	stats    Stats
	finished time.Time
}

type item struct {
	done chan struct{}
	got  store.Fetched
	err  error
	size int64
}

// Stats count what a Prefetcher did. Hits + Joined + Early + Outside is the number of
// distinct chunks reads asked for; (Hits + Joined + Early) / that is the profile's coverage
// of this boot, and (Hits + Joined) / that the share prefetching took off the reads' path.
type Stats struct {
	Queued        int   // chunks in the profile
	Started, Done int   // prefetches started; finished with the chunk
	Failed        int   // prefetches that failed (the read fetches the chunk itself)
	Bytes         int64 // stored bytes prefetched
	Hits          int   // reads served a prefetched chunk
	Joined        int   // reads that waited for a prefetch in flight
	Early         int   // reads of profile chunks the queue had not reached: fetched by the read
	Outside       int   // reads of chunks outside the profile
	Again         int   // reads of chunks a read had before (evicted from the reader's memory since)
	Skipped       int   // queue entries a read had fetched already
	Pauses        int   // times the queue waited for reads on the network
	Dropped       int   // prefetched chunks no read claimed before Linger ran out
	Held          int64 // plain bytes held now
	Finished      bool
	Elapsed       time.Duration // from Start to the end of the queue (or now)
}

// The boot profile's chunks are left to the queue by the image reader's read-ahead.
var _ image.Planner = (*Prefetcher)(nil)

// Queue returns the chunks ix's profile lists, in order, each once.
func Queue(ix *index.Index) []chunk.Ref {
	seen := map[chunk.ID]bool{}
	var q []chunk.Ref
	for _, i := range ix.Profile.Entries {
		e := ix.Entries[i]
		if !seen[e.ID] {
			seen[e.ID] = true
			q = append(q, chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored})
		}
	}
	return q
}

// NewPrefetcher returns a Prefetcher over next for the chunks in queue. It fetches nothing
// until Start.
func NewPrefetcher(next store.Fetcher, queue []chunk.Ref, opt Options) *Prefetcher {
	if opt.Parallel <= 0 {
		opt.Parallel = 8
	}
	if opt.Budget <= 0 {
		opt.Budget = 128 << 20
	}
	if opt.Linger == 0 {
		opt.Linger = 5 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Prefetcher{
		next: next, opt: opt, queue: queue, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		profile: make(map[chunk.ID]bool, len(queue)), wake: make(chan struct{}),
		items: map[chunk.ID]*item{}, served: map[chunk.ID]bool{},
	}
	for _, r := range queue {
		p.profile[r.ID] = true
	}
	p.stats.Queued = len(queue)
	return p
}

// Start begins prefetching.
func (p *Prefetcher) Start() {
	p.mu.Lock()
	p.start = time.Now()
	p.mu.Unlock()
	for range p.opt.Parallel {
		p.workers.Add(1)
		go p.worker()
	}
	go func() {
		p.workers.Wait()
		p.mu.Lock()
		p.finished = time.Now()
		p.mu.Unlock()
		close(p.done)
		p.linger()
	}()
}

// Done is closed when the queue is finished (or the Prefetcher closed).
func (p *Prefetcher) Done() <-chan struct{} { return p.done }

// Close stops prefetching and lets go of what it holds.
func (p *Prefetcher) Close() {
	p.cancel()
	p.workers.Wait()
	p.mu.Lock()
	p.dropAll()
	p.mu.Unlock()
}

// Stats returns the counters so far.
func (p *Prefetcher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Held = p.held
	s.Finished = !p.finished.IsZero()
	switch {
	case s.Finished:
		s.Elapsed = p.finished.Sub(p.start)
	case !p.start.IsZero():
		s.Elapsed = time.Since(p.start)
	}
	return s
}

// Fetch serves a read's chunk: prefetched, on its way, or fetched now.
func (p *Prefetcher) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	p.mu.Lock()
	if it, ok := p.items[ref.ID]; ok {
		select {
		case <-it.done: // failed items are removed by the worker: this one succeeded
			p.claim(ref.ID, it)
			p.stats.Hits++
			p.served[ref.ID] = true
			p.mu.Unlock()
			return it.got, nil
		default:
		}
		p.stats.Joined++
		p.served[ref.ID] = true
		p.mu.Unlock()
		select {
		case <-it.done:
		case <-ctx.Done():
			return store.Fetched{}, ctx.Err()
		}
		p.mu.Lock()
		if it.err == nil {
			p.claim(ref.ID, it)
			p.mu.Unlock()
			return it.got, nil
		}
	}
	// Not prefetched: this read fetches it now, and the queue waits until it has.
	switch {
	case p.served[ref.ID]:
		p.stats.Again++
	case p.profile[ref.ID]:
		p.stats.Early++
	default:
		p.stats.Outside++
	}
	p.served[ref.ID] = true
	p.demand++
	p.mu.Unlock()
	got, err := p.next.Fetch(ctx, ref)
	p.mu.Lock()
	p.demand--
	if p.demand == 0 {
		p.signal()
	}
	p.mu.Unlock()
	return got, err
}

// claim hands a prefetched chunk to its reader (the image reader keeps it from now on).
func (p *Prefetcher) claim(id chunk.ID, it *item) {
	if p.items[id] == it {
		delete(p.items, id)
		p.held -= it.size
		p.signal()
	}
}

// signal wakes a paused queue.
func (p *Prefetcher) signal() {
	close(p.wake)
	p.wake = make(chan struct{})
}

func (p *Prefetcher) worker() {
	defer p.workers.Done()
	for {
		ref, it, ok := p.take()
		if !ok {
			return
		}
		got, err := p.next.Fetch(p.ctx, ref)
		p.mu.Lock()
		it.got, it.err = got, err
		if err != nil {
			delete(p.items, ref.ID)
			p.held -= it.size
			p.stats.Failed++
			p.signal()
		} else {
			p.stats.Done++
			p.stats.Bytes += int64(len(got.Raw))
		}
		close(it.done)
		p.mu.Unlock()
	}
}

// take returns the next chunk to prefetch, waiting while reads are on the network or the
// budget is full; false when the queue is done or the Prefetcher closed.
func (p *Prefetcher) take() (chunk.Ref, *item, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	paused := false
	for {
		if p.ctx.Err() != nil {
			return chunk.Ref{}, nil, false
		}
		for p.pos < len(p.queue) && (p.items[p.queue[p.pos].ID] != nil || p.served[p.queue[p.pos].ID]) {
			p.pos++
			p.stats.Skipped++
		}
		if p.pos >= len(p.queue) {
			return chunk.Ref{}, nil, false
		}
		ref := p.queue[p.pos]
		fits := p.held == 0 || p.held+int64(ref.Len) <= p.opt.Budget
		if p.demand == 0 && fits {
			p.pos++
			it := &item{done: make(chan struct{}), size: int64(ref.Len)}
			p.items[ref.ID] = it
			p.held += it.size
			p.stats.Started++
			return ref, it, true
		}
		if p.demand > 0 && !paused {
			p.stats.Pauses++
			paused = true
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-p.ctx.Done():
		}
		p.mu.Lock()
	}
}

// linger drops what no read claimed, Linger after the queue finished.
func (p *Prefetcher) linger() {
	if p.opt.Linger < 0 {
		return
	}
	select {
	case <-time.After(p.opt.Linger):
	case <-p.ctx.Done():
		return
	}
	p.mu.Lock()
	p.dropAll()
	p.mu.Unlock()
}

func (p *Prefetcher) dropAll() {
	for id, it := range p.items {
		select {
		case <-it.done:
			delete(p.items, id)
			p.held -= it.size
			p.stats.Dropped++
		default:
		}
	}
}

// Planned reports whether the prefetcher holds id, is fetching it, or will fetch it (the
// profile lists it, no read has had it, and the queue still runs): the image reader's
// read-ahead then leaves it to the queue instead of fetching it a second time
// (image.Planner).
func (p *Prefetcher) Planned(id chunk.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.items[id] != nil {
		return true
	}
	return p.profile[id] && !p.served[id] && p.finished.IsZero() && p.ctx.Err() == nil
}
