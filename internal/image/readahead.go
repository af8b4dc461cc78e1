package image

import (
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Read-ahead policy, the one both `nowhere mount` and the boot daemon use (both build an
// image.Reader). It must never hurt a boot: a boot's reads jump around, and the old policy
// (read-ahead from the first large read, doubling from the second sequential one, up to 8
// MiB) fetched 1.94x the bytes of no read-ahead on a WAN boot. So:
//
//   - a stream gets no read-ahead until it is sustained: sustainedReads reads in a row,
//     each starting where the one before ended (or two covering largeStream);
//   - its window then doubles per sequential read, but never exceeds a quarter of the
//     bytes the stream has read until it has read longStream (what a stream that stops
//     now wastes is bounded by what it used), nor the link's bandwidth-delay product times bdpFactor (more does not go
//     faster, it only queues), nor Options.ReadAhead;
//   - a jump starts a new stream, with no read-ahead;
//   - chunks in memory, in flight, or that the fetcher below will bring by itself (the
//     boot profile's prefetch queue: Planner) are skipped;
//   - read-ahead starts no fetch while a read's own fetch is running (a read never queues
//     behind read-ahead; at most Parallel read-ahead fetches were already in flight),
//     unless that read continues a stream being read ahead: pausing then would stall the
//     very reader read-ahead serves (its next chunks would not be on their way).

// stream is one sequential reader the Reader follows.
type stream struct {
	end      int64 // where the last read of the stream ended
	run      int   // reads in a row, each starting where the one before ended
	streamed int64 // bytes those reads asked for
	window   int64 // current read-ahead, doubling while the stream stays sequential
	ahead    int64 // read-ahead has been started for the chunks before this offset
	limit    int64 // ... and should reach this offset
	feeding  bool  // a feeder goroutine is starting fetches up to limit
	gen      uint64
	used     uint64
}

const (
	// sustainedReads is how many reads in a row, each starting where the one before
	// ended, make a stream worth reading ahead. A boot's file reads are mostly one to
	// three requests long; a dd or a tar of a large file is hundreds.
	sustainedReads = 4
	// largeStream is what two reads in a row must cover to count as sustained without
	// waiting for sustainedReads of them.
	largeStream = 2 << 20
	// longStream is the length after which a stream's window is no longer held to a
	// quarter of what it read.
	longStream = 4 << 20
	// minWindow is the first window of a sustained stream of small reads.
	minWindow = 256 << 10
	// bdpFactor times the link's bandwidth-delay product is the most read-ahead worth
	// having in flight: one BDP keeps the link busy, the rest covers chunk granularity
	// and the reader's own pauses.
	bdpFactor = 4
	// drainBudget: a window the link carries in this long is cheap even when the stream
	// stops and it is wasted. On loopback or a LAN (hundreds of MB/s) that allows the
	// whole cap, and the CPUs that verify and decompress chunks are the limit, which a
	// deep read-ahead keeps busy; at 100 Mbit/s it is ~1 MB, below 4 BDP.
	drainBudget = 100 * time.Millisecond
	// minLinkWindow is the least the link-sized cap allows: with a BDP of a few KiB (a
	// near, slow link) the reader still needs a few dozen chunks in flight to use both
	// the network and the CPUs that verify and decompress them.
	minLinkWindow = 2 << 20
	// linkEvery is how long a link measurement is reused (Options.Link may lock and sort
	// every mirror's state).
	linkEvery = time.Second
)

// Planner is a Fetcher that fetches some chunks by itself (profile.Prefetcher: the boot
// profile's queue). Read-ahead does not fetch a chunk the planner will bring anyway.
type Planner interface {
	Planned(id chunk.ID) bool
}

// LinkOf returns an Options.Link for a mirror set: the throughput and latency the set
// measures of its best mirror (0, 0 until it has measured any).
func LinkOf(set *store.MirrorSet) func() (float64, time.Duration) {
	return func() (float64, time.Duration) {
		for _, m := range set.Status() { // best first
			if m.Throughput > 0 && m.Latency > 0 {
				return m.Throughput, m.Latency
			}
		}
		return 0, 0
	}
}

// linkCache is the last bandwidth-delay product read from Options.Link.
type linkCache struct {
	bdp   int64 // bytes: throughput x latency
	drain int64 // bytes the link carries in drainBudget
	at    time.Time
}

// windowCap returns the most read-ahead a stream may have. Called with r.mu held.
func (r *Reader) windowCap() int64 {
	c := r.opt.ReadAhead
	if r.opt.Link == nil {
		return c
	}
	if now := time.Now(); r.link.at.IsZero() || now.Sub(r.link.at) > linkEvery {
		thr, lat := r.opt.Link()
		r.link = linkCache{bdp: int64(thr * lat.Seconds()), drain: int64(thr * drainBudget.Seconds()), at: now}
	}
	if r.link.bdp <= 0 { // not measured yet: the cap alone
		return c
	}
	return min(c, max(bdpFactor*r.link.bdp, r.link.drain, minLinkWindow))
}

// readAhead follows the read [off, off+n) and, once its stream is sustained, moves the
// stream's read-ahead target past it. It never blocks the read: if no feeder runs for the
// stream, it starts one, which starts the fetches (feed).
func (r *Reader) readAhead(off, n int64) {
	if r.opt.ReadAhead < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tick++
	var s *stream
	for i := range r.streams {
		st := &r.streams[i]
		// Within one read's length of where the stream ended: concurrent kernel requests
		// of one sequential reader may arrive slightly out of order.
		if st.used != 0 && off >= st.end-n && off <= st.end+n {
			s = st
			break
		}
	}
	if s == nil { // a jump: a new stream replaces the least recently used one
		s = &r.streams[0]
		for i := range r.streams {
			if r.streams[i].used < s.used {
				s = &r.streams[i]
			}
		}
		*s = stream{gen: s.gen + 1, run: 1, streamed: n, end: off + n, used: r.tick} // its feeder, if any, stops
		return
	}
	s.run++
	s.streamed += n
	s.end, s.used = max(s.end, off+n), r.tick
	// Large reads prove a stream sooner: the kernel sends 1 MiB reads only once its own
	// read-ahead has grown on a sequential reader (or for dd bs=1M), never for a boot's
	// metadata and small files.
	if s.run < sustainedReads && (s.run < 2 || s.streamed < largeStream) {
		return
	}
	// What a stream that stops now wastes is its window: keep it to a quarter of what the
	// stream has read until the stream is long (a boot's files are mostly shorter, a dd
	// or a tar of a large file far longer), then let it reach the cap.
	bound := s.streamed / 4
	if s.streamed >= longStream {
		bound = s.streamed
	}
	s.window = min(max(2*s.window, n, minWindow), bound, r.windowCap())
	if s.window <= 0 {
		return
	}
	// The read itself fetches what it covers; read-ahead starts after it.
	s.ahead = max(s.ahead, off+n)
	s.limit = min(max(s.limit, off+n+s.window), r.ix.Size)
	if !s.feeding && s.ahead < s.limit {
		s.feeding = true
		go r.feed(s, s.gen)
	}
}

// feed starts the fetches of stream s (generation gen) from s.ahead up to s.limit, one
// prefetch slot each, and stops when it gets there or the stream is replaced. (Starting
// only what free slots allowed at each read left a stream of small chunks behind for good:
// a 1 MiB read of 28 KiB chunks needs more fetches than there are slots.)
func (r *Reader) feed(s *stream, gen uint64) {
	entries := r.ix.Entries
	planner, _ := r.f.(Planner)
	for {
		r.mu.Lock()
		if s.gen != gen || s.ahead >= s.limit {
			if s.gen == gen {
				s.feeding = false
			}
			r.mu.Unlock()
			return
		}
		e := entries[r.ix.Find(s.ahead)]
		s.ahead = e.End()
		r.mu.Unlock()
		if e.Zero || r.cache.contains(e.ID) || r.busy(e.ID) || (planner != nil && planner.Planned(e.ID)) {
			continue
		}
		r.prefetchSlots <- struct{}{}
		r.mu.Lock()
		// Reads first: no read-ahead fetch starts while a read's own fetch runs.
		for r.demand > 0 && s.gen == gen {
			r.pausedFeeders++
			wake := r.wake
			r.mu.Unlock()
			<-wake
			r.mu.Lock()
			r.pausedFeeders--
		}
		if s.gen != gen {
			r.mu.Unlock()
			<-r.prefetchSlots
			continue // the loop sees the new generation and stops
		}
		r.stats.Prefetches.Add(1)
		fl := r.joinLocked(e, true, false)
		r.mu.Unlock()
		go func() { <-fl.Done(); <-r.prefetchSlots }()
	}
}

// continuesStream reports whether a read at off of n bytes continues a stream that is
// being read ahead.
func (r *Reader) continuesStream(off, n int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.streams {
		st := &r.streams[i]
		if st.used != 0 && st.window > 0 && off >= st.end-n && off <= st.end+n {
			return true
		}
	}
	return false
}

// demandDone notes the end of a read's own fetch; the last one wakes paused feeders.
// Called with r.mu held.
func (r *Reader) demandDone() {
	r.demand--
	if r.demand == 0 {
		close(r.wake)
		r.wake = make(chan struct{})
	}
}

// busy reports whether a fetch of id is in flight.
func (r *Reader) busy(id chunk.ID) bool {
	return r.flights.Running(id)
}
