package store_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// TestTenTarpitsOneHonest: ten mirrors that answer every probe but hold chunk requests
// until the client leaves, listed before one honest mirror. A read of the whole image,
// 16 chunks at a time, gets every chunk right, and no fetch waits as long as one
// attempt timeout (before, each waited one to three: the hedge budget was gone after the
// first burst and every attempt ran to its timeout).
func TestTenTarpitsOneHonest(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 8<<20, 11)
	const attemptTimeout = 5 * time.Second
	var stores []store.Store
	for range 10 {
		tarpit := startMirror(t, dir)
		tarpit.delay = func(*http.Request) time.Duration { return time.Hour }
		stores = append(stores, tarpit.store(t))
	}
	stores = append(stores, startMirror(t, dir).store(t))
	set := newSet(t, store.MirrorOptions{AttemptTimeout: attemptTimeout}, stores...)
	set.Probe(context.Background())
	var mu sync.Mutex
	var longest time.Duration
	g := new(errgroup.Group)
	g.SetLimit(16)
	for _, ref := range refsOf(ix) {
		g.Go(func() error {
			start := time.Now()
			f, err := set.Fetch(context.Background(), ref)
			if err != nil {
				return err
			}
			if chunk.Sum(f.Plain) != ref.ID {
				t.Errorf("chunk %s: wrong bytes", ref.ID)
			}
			mu.Lock()
			longest = max(longest, time.Since(start))
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if longest >= attemptTimeout {
		t.Errorf("the longest fetch waited %s, at least one attempt timeout (%s)", longest.Round(time.Millisecond), attemptTimeout)
	}
	t.Logf("longest fetch %s", longest.Round(time.Millisecond))
}
