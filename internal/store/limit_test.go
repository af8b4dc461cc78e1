package store_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Limit(f, n) never has more than n requests at the server at once, and every fetch still
// gets its chunk.
func TestLimitBoundsRequestsInFlight(t *testing.T) {
	d := newDir(t)
	var chunks []testChunk
	for i := range 12 {
		c := newChunk(uint64(i), 20000)
		put(t, d, c)
		chunks = append(chunks, c)
	}
	root, err := os.OpenRoot(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var in, most atomic.Int64
	h := server.Handler(root)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := in.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		defer in.Add(-1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	for _, n := range []int{1, 3} {
		most.Store(0)
		f := store.Limit(store.Verify(newHTTP(t, srv.URL)), n)
		var wg sync.WaitGroup
		for _, c := range chunks {
			wg.Go(func() {
				got, err := f.Fetch(context.Background(), c.ref)
				if err != nil || !bytes.Equal(got.Plain, c.plain) {
					t.Errorf("limit %d: chunk %s: %v", n, c.ref.ID, err)
				}
			})
		}
		wg.Wait()
		if m := most.Load(); m > int64(n) || m == 0 {
			t.Errorf("limit %d: %d requests in flight at once", n, m)
		}
	}
	// A fetch waiting for its turn gives up with its context.
	stuck := &stuckFetcher{entered: make(chan struct{}), release: make(chan struct{})}
	one := store.Limit(stuck, 1)
	go one.Fetch(context.Background(), chunks[0].ref)
	<-stuck.entered // the first fetch holds the only slot
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := one.Fetch(ctx, chunks[1].ref); !errors.Is(err, context.Canceled) {
		t.Errorf("a fetch waiting for a slot with a cancelled context: %v", err)
	}
	close(stuck.release)
}

// stuckFetcher blocks every fetch until released, saying when one has entered.
type stuckFetcher struct{ entered, release chan struct{} }

func (s *stuckFetcher) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	close(s.entered)
	<-s.release
	return store.Fetched{}, errors.New("released")
}
