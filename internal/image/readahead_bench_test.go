package image

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// legacyReadAhead is the policy before readahead.go (main at 3cb8b2b), kept here as the
// benchmark's baseline: read-ahead from a first read of >= 128 KiB, and from the second
// read of a stream (within 128 KiB of its end) on, a window doubling up to the cap.
func (r *Reader) legacyReadAhead(off, n int64) {
	if r.opt.ReadAhead < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tick++
	var s *stream
	for i := range r.streams {
		st := &r.streams[i]
		if st.used != 0 && off >= st.end-128<<10 && off <= st.end+128<<10 {
			s = st
			break
		}
	}
	if s == nil {
		s = &r.streams[0]
		for i := range r.streams {
			if r.streams[i].used < s.used {
				s = &r.streams[i]
			}
		}
		*s = stream{gen: s.gen + 1}
		if n >= 128<<10 {
			s.window = min(n, r.opt.ReadAhead)
		}
	} else {
		s.window = min(max(2*s.window, 2*n, 256<<10), r.opt.ReadAhead)
	}
	s.end, s.used = off+n, r.tick
	if s.window == 0 {
		return
	}
	s.ahead = max(s.ahead, off+n)
	s.limit = min(max(s.limit, off+n+s.window), r.ix.Size)
	if !s.feeding && s.ahead < s.limit {
		s.feeding = true
		go r.feed(s, s.gen)
	}
}

// wanLink is the real fetcher behind an emulated link: one shared pipe of bw bytes/s
// (transfers queue for it) and lat of latency per request.
type wanLink struct {
	f    store.Fetcher
	lat  time.Duration
	bw   float64
	mu   sync.Mutex
	free time.Time
}

func (w *wanLink) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	w.mu.Lock()
	start := time.Now()
	if w.free.After(start) {
		start = w.free
	}
	w.free = start.Add(time.Duration(float64(ref.Stored) / w.bw * float64(time.Second)))
	done := w.free.Add(w.lat)
	w.mu.Unlock()
	time.Sleep(time.Until(done))
	return w.f.Fetch(ctx, ref)
}

// BenchmarkReadAheadPolicies compares no read-ahead, the old policy and the adaptive one,
// interleaved round by round: the bytes a boot-like reader fetches (deterministic), and
// the time of a cold sequential read of the 64 MiB image in 1 MiB reads (FUSE's
// max_read) from the local store (loopback-like: all CPU) and over an emulated 100
// Mbit/s, 40 ms link. Run: go test ./internal/image -run '^$' -bench ReadAheadPolicies
// -benchtime 1x
func BenchmarkReadAheadPolicies(b *testing.B) {
	f := bootFixture(b)
	const rounds = 5
	policies := []string{"none", "old", "new"}
	open := func(policy string, fe store.Fetcher, link func() (float64, time.Duration)) *Reader {
		opt := Options{Link: link}
		if policy == "none" {
			opt.ReadAhead = -1
		}
		r := NewReader(f.ix, fe, opt)
		if policy == "old" {
			r.follow = r.legacyReadAhead
		}
		return r
	}
	seq := func(r *Reader) time.Duration {
		p := make([]byte, 1<<20)
		t0 := time.Now()
		for off := int64(0); ; off += int64(len(p)) {
			if _, err := r.ReadAt(p, off); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	bytes := map[string]int64{}
	local := map[string][]time.Duration{}
	wan := map[string][]time.Duration{}
	for range b.N {
		for round := range rounds {
			for _, pol := range policies {
				reads := bootLikeReads(int64(len(f.img)), uint64(round+1))
				bytes[pol] += replay(b, open(pol, store.Verify(f.dir), nil), f, reads).FetchedPlain
				local[pol] = append(local[pol], seq(open(pol, store.Verify(f.dir), nil)))
				w := &wanLink{f: store.Verify(f.dir), lat: 40 * time.Millisecond, bw: 12.5e6}
				link := func() (float64, time.Duration) { return w.bw, w.lat } // what a mirror set would measure
				// The WAN read covers 32 MiB: long enough that the start of a stream (no read-ahead
				// before it is sustained) does not dominate, short enough for a few rounds.
				r := open(pol, w, link)
				p := make([]byte, 1<<20)
				t0 := time.Now()
				for off := int64(0); off < 32<<20; off += int64(len(p)) {
					if _, err := r.ReadAt(p, off); err != nil {
						b.Fatal(err)
					}
				}
				wan[pol] = append(wan[pol], time.Since(t0))
			}
		}
	}
	med := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	fmt.Printf("boot-like reads (%d rounds): fetched bytes none %d, old %d (%.3fx), new %d (%.3fx)\n", rounds,
		bytes["none"], bytes["old"], float64(bytes["old"])/float64(bytes["none"]), bytes["new"], float64(bytes["new"])/float64(bytes["none"]))
	for _, c := range []struct {
		name string
		mb   float64
		t    map[string][]time.Duration
	}{{"local store, 64 MiB", 64, local}, {"100 Mbit/s + 40 ms, 32 MiB", 32, wan}} {
		fmt.Printf("sequential read, %s (median of %d): none %.1f MB/s, old %.1f MB/s, new %.1f MB/s (new/old time %.3f)\n", c.name, rounds,
			c.mb*1.048576/med(c.t["none"]).Seconds(), c.mb*1.048576/med(c.t["old"]).Seconds(), c.mb*1.048576/med(c.t["new"]).Seconds(),
			med(c.t["new"]).Seconds()/med(c.t["old"]).Seconds())
	}
	b.ReportMetric(float64(bytes["new"])/float64(bytes["none"]), "new-bytes/none")
	b.ReportMetric(float64(bytes["old"])/float64(bytes["none"]), "old-bytes/none")
}
