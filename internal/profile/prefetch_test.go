package profile

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// profiled returns the test image packed, with a profile of the given entries.
func profiled(t *testing.T, entries ...int) *packed {
	p := packImage(t, testImage())
	p.ix.Profile = index.Profile{Boots: 1, Entries: entries}
	if _, err := index.Encode(p.ix); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it holds; the deadline only keeps a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func readEntry(t *testing.T, r *image.Reader, p *packed, i int) {
	t.Helper()
	if err := readEntryErr(r, p, i); err != nil {
		t.Fatal(err)
	}
}

// readEntryErr reads entry i through r and checks the bytes (for goroutines: no t.Fatal).
func readEntryErr(r *image.Reader, p *packed, i int) error {
	e := p.ix.Entries[i]
	buf := make([]byte, e.Len)
	if _, err := r.ReadAtContext(context.Background(), buf, e.Off); err != nil {
		return err
	}
	if !bytes.Equal(buf, p.img[e.Off:e.End()]) {
		return fmt.Errorf("entry %d: wrong bytes", i)
	}
	return nil
}

// The profile's chunks are fetched in the profile's order, each once, at most Parallel at
// a time, and reads then find them without fetching.
func TestPrefetchFetchesTheProfileInOrder(t *testing.T) {
	order := []int{50, 3, 4, 60, 0, 20, 21, 22, 40, 41}
	for _, par := range []int{1, 4} {
		p := profiled(t, order...)
		g := newGate(store.Verify(p.dir))
		pf := NewPrefetcher(g, Queue(p.ix), Options{Parallel: par})
		pf.Start()
		<-pf.Done()
		got := g.fetched()
		if len(got) != len(order) || g.maxIn > par {
			t.Fatalf("parallel %d: %d fetches, at most %d at once; want %d, <= %d", par, len(got), g.maxIn, len(order), par)
		}
		if par == 1 {
			for k, i := range order {
				if got[k] != p.ix.Entries[i].ID {
					t.Fatalf("fetch %d is not entry %d: the queue is out of order", k, i)
				}
			}
		}
		r := image.NewReader(p.ix, pf, image.Options{ReadAhead: -1})
		for _, i := range order {
			readEntry(t, r, p, i)
		}
		s := pf.Stats()
		if len(g.fetched()) != len(order) || s.Hits != len(order) || s.Done != len(order) || s.Held != 0 || !s.Finished {
			t.Fatalf("parallel %d: after reading the profile: %d fetches, stats %+v", par, len(g.fetched()), s)
		}
		pf.Close()
	}
}

// A read never waits behind the queue: with every prefetch stuck on the network, a read of
// a chunk outside the profile, and of a profile chunk the queue has not reached, each
// fetch at once and return while the prefetches are still stuck. The queue then skips the
// chunk the read fetched.
func TestReadsAreNotQueuedBehindPrefetches(t *testing.T) {
	order := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	p := profiled(t, order...)
	g := newGate(store.Verify(p.dir))
	release := make(chan struct{})
	g.holdAll = release // everything waits ...
	pf := NewPrefetcher(g, Queue(p.ix), Options{Parallel: 2})
	pf.Start()
	defer pf.Close()
	waitFor(t, "two prefetches in flight", func() bool { return pf.Stats().Started == 2 })
	g.mu.Lock()
	g.holdAll = nil // ... except what comes from now on: the reads
	g.mu.Unlock()
	r := image.NewReader(p.ix, pf, image.Options{ReadAhead: -1})
	done := make(chan error, 2)
	go func() { done <- readEntryErr(r, p, 40) }() // outside the profile
	go func() { done <- readEntryErr(r, p, 9) }()  // 8th in the queue
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a read waited behind prefetches stuck on the network")
		}
	}
	s := pf.Stats()
	if s.Done != 0 || s.Started != 2 || s.Outside != 1 || s.Early != 1 {
		t.Fatalf("reads done while prefetches were stuck, stats %+v: want 0 done, 2 started, 1 outside, 1 early", s)
	}
	close(release)
	<-pf.Done()
	if n := g.count(p.ix.Entries[9].ID); n != 1 {
		t.Fatalf("entry 9 fetched %d times: the queue did not skip what a read fetched", n)
	}
	if s := pf.Stats(); s.Skipped != 1 || s.Done != 9 {
		t.Fatalf("stats %+v: want 1 skipped, 9 prefetched", s)
	}
}

// While a read waits on the network, no prefetch starts: the queue pauses, and goes on
// once the read has its chunk.
func TestQueuePausesWhileAReadWaits(t *testing.T) {
	p := profiled(t, 1, 2, 3, 4, 5, 6)
	g := newGate(store.Verify(p.dir))
	releaseRead := g.hold(p.ix.Entries[40].ID)
	pf := NewPrefetcher(g, Queue(p.ix), Options{Parallel: 3})
	defer pf.Close()
	r := image.NewReader(p.ix, pf, image.Options{ReadAhead: -1})
	readDone := make(chan error, 1)
	go func() { readDone <- readEntryErr(r, p, 40) }()
	<-g.arrived // the read's request is on the network
	pf.Start()
	waitFor(t, "all three workers paused", func() bool { return pf.Stats().Pauses == 3 })
	if got := g.fetched(); len(got) != 1 || pf.Stats().Started != 0 {
		t.Fatalf("%d fetches, %d prefetches started while a read waited; want only the read's", len(got), pf.Stats().Started)
	}
	releaseRead()
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	<-pf.Done()
	if s := pf.Stats(); s.Done != 6 || len(g.fetched()) != 7 {
		t.Fatalf("after the read: stats %+v, %d fetches; want all 6 prefetched", s, len(g.fetched()))
	}
}

// A read of a chunk being prefetched waits for that fetch instead of fetching it again.
func TestReadJoinsThePrefetchInFlight(t *testing.T) {
	p := profiled(t, 7, 8)
	g := newGate(store.Verify(p.dir))
	release := g.hold(p.ix.Entries[7].ID)
	pf := NewPrefetcher(g, Queue(p.ix), Options{Parallel: 2})
	pf.Start()
	defer pf.Close()
	waitFor(t, "entry 7 on the network", func() bool { return g.count(p.ix.Entries[7].ID) == 1 })
	r := image.NewReader(p.ix, pf, image.Options{ReadAhead: -1})
	done := make(chan error, 1)
	go func() { done <- readEntryErr(r, p, 7) }()
	waitFor(t, "the read to join", func() bool { return pf.Stats().Joined == 1 })
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := g.count(p.ix.Entries[7].ID); n != 1 {
		t.Fatalf("entry 7 fetched %d times", n)
	}
}

// The budget bounds what is held for reads that have not come: the queue waits at it and
// goes on as reads claim chunks. Unclaimed chunks are let go after Linger.
func TestPrefetchBudgetAndLinger(t *testing.T) {
	p := profiled(t, 10, 11, 12, 13, 14, 15)
	g := newGate(store.Verify(p.dir))
	pf := NewPrefetcher(g, Queue(p.ix), Options{Parallel: 4, Budget: 3 * 4096, Linger: 50 * time.Millisecond})
	pf.Start()
	defer pf.Close()
	waitFor(t, "three prefetched", func() bool { return pf.Stats().Done == 3 })
	if s := pf.Stats(); s.Started != 3 || s.Held != 3*4096 {
		t.Fatalf("at the budget: %+v; want 3 started, 12 KiB held", s)
	}
	r := image.NewReader(p.ix, pf, image.Options{ReadAhead: -1})
	readEntry(t, r, p, 10)
	waitFor(t, "one more prefetched after a read", func() bool { return pf.Stats().Done == 4 })
	readEntry(t, r, p, 11)
	readEntry(t, r, p, 12)
	<-pf.Done()
	waitFor(t, "unclaimed chunks dropped", func() bool { return pf.Stats().Dropped == 3 })
	if s := pf.Stats(); s.Held != 0 || s.Hits != 3 {
		t.Fatalf("after linger: %+v", s)
	}
	// A dropped chunk is fetched again when read.
	readEntry(t, r, p, 15)
	if n := g.count(p.ix.Entries[15].ID); n != 2 {
		t.Fatalf("entry 15 fetched %d times, want 2 (prefetched, dropped, read)", n)
	}
}

func TestQueueListsEachChunkOnce(t *testing.T) {
	img := testImage()
	copy(img[5<<12:6<<12], img[1<<12:2<<12]) // entries 1 and 5 hold the same chunk
	p := packImage(t, img)
	p.ix.Profile = index.Profile{Entries: []int{5, 1, 2}}
	q := Queue(p.ix)
	if len(q) != 2 || q[0] != (chunk.Ref{ID: p.ix.Entries[5].ID, Len: 4096, Stored: p.ix.Entries[5].Stored}) {
		t.Fatalf("queue %v", q)
	}
}
