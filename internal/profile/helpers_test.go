package profile

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
)

func randBytes(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// packed is an image packed with pack.Run into a directory store: 4 KiB fixed chunks, a
// zero run in the middle.
type packed struct {
	img []byte
	dir *store.Dir
	ix  *index.Index
}

func packImage(t *testing.T, img []byte) *packed {
	t.Helper()
	dir, err := store.CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	spec, err := chunk.ParseSpec("fixed:4K")
	if err != nil {
		t.Fatal(err)
	}
	res, err := pack.Run(context.Background(), bytes.NewReader(img), dir, pack.Options{Name: "img", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return &packed{img: img, dir: dir, ix: res.Index}
}

// testImage is 64 chunks of random data with 16 zero chunks in the middle.
func testImage() []byte {
	img := randBytes(1, 80<<12)
	clear(img[32<<12 : 48<<12])
	return img
}

// gate is instrumentation around a real fetcher: it records the order of fetches and holds
// the ones a test asks it to hold until released.
type gate struct {
	next store.Fetcher

	mu       sync.Mutex
	order    []chunk.ID
	inflight int
	maxIn    int
	holds    map[chunk.ID]chan struct{}
	holdAll  chan struct{} // non-nil: every fetch waits for it
	arrived  chan chunk.ID
}

func newGate(next store.Fetcher) *gate {
	return &gate{next: next, holds: map[chunk.ID]chan struct{}{}, arrived: make(chan chunk.ID, 1024)}
}

func (g *gate) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	g.mu.Lock()
	g.order = append(g.order, ref.ID)
	g.inflight++
	g.maxIn = max(g.maxIn, g.inflight)
	hold, all := g.holds[ref.ID], g.holdAll
	g.mu.Unlock()
	g.arrived <- ref.ID
	defer func() {
		g.mu.Lock()
		g.inflight--
		g.mu.Unlock()
	}()
	for _, h := range []chan struct{}{hold, all} {
		if h != nil {
			select {
			case <-h:
			case <-ctx.Done():
				return store.Fetched{}, ctx.Err()
			}
		}
	}
	return g.next.Fetch(ctx, ref)
}

func (g *gate) hold(id chunk.ID) func() {
	c := make(chan struct{})
	g.mu.Lock()
	g.holds[id] = c
	g.mu.Unlock()
	return func() { close(c) }
}

func (g *gate) fetched() []chunk.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]chunk.ID(nil), g.order...)
}

func (g *gate) count(id chunk.ID) int {
	n := 0
	for _, x := range g.fetched() {
		if x == id {
			n++
		}
	}
	return n
}
