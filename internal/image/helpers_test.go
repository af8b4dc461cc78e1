package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// fixture is an image packed with pack.Run into a directory store.
type fixture struct {
	img []byte
	dir *store.Dir
	ix  *index.Index
}

// newFixture packs an 8 MiB image with long zero runs and a repeated block, in small
// chunks (16 KiB average) so reads span many of them. Tests that change the store use
// their own; the others share one.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f, err := packFixture(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.dir.Close() })
	return f
}

func packFixture(tmp string) (*fixture, error) {
	img := randBytes(1, 8<<20)
	clear(img[1<<20 : 1<<20+300<<10])
	clear(img[5<<20 : 6<<20])
	copy(img[3<<20:], img[2<<20:2<<20+512<<10])
	d, err := store.CreateDir(filepath.Join(tmp, "store"))
	if err != nil {
		return nil, err
	}
	sp, err := chunk.ParseSpec("cdc:4K:16K:64K")
	if err != nil {
		return nil, err
	}
	res, err := pack.Run(context.Background(), bytes.NewReader(img), d, pack.Options{Name: "test", Spec: sp})
	if err != nil {
		return nil, err
	}
	if res.Zero == 0 || res.Chunks < 200 {
		return nil, fmt.Errorf("fixture: %d chunks, %d zero runs", res.Chunks, res.Zero)
	}
	return &fixture{img: img, dir: d, ix: res.Index}, nil
}

var (
	sharedOnce sync.Once
	shared     *fixture
	sharedErr  error
)

// sharedFixture is one packed image for tests that only read it.
func sharedFixture(t *testing.T) *fixture {
	t.Helper()
	sharedOnce.Do(func() {
		tmp, err := os.MkdirTemp("", "nowhere-image-test-")
		if err != nil {
			sharedErr = err
			return
		}
		sharedTmp = tmp
		shared, sharedErr = packFixture(tmp)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

var sharedTmp string

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.dir.Close()
	}
	if sharedTmp != "" {
		os.RemoveAll(sharedTmp)
	}
	if bootFix != nil {
		bootFix.dir.Close()
	}
	if bootTmp != "" {
		os.RemoveAll(bootTmp)
	}
	os.Exit(code)
}

// counting wraps the real fetcher to count fetches and, when gate is set, to hold each
// fetch until the gate opens (instrumentation, not a mock: the bytes come from the store).
type counting struct {
	f       store.Fetcher
	calls   atomic.Int64
	gate    chan struct{}
	started chan chunk.ID // receives the ID of each fetch as it starts, if set
	sawCtx  chan error    // receives ctx.Err() when a gated fetch ends, if set
	failID  chunk.ID
	failErr error
}

func (c *counting) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	c.calls.Add(1)
	if c.started != nil {
		c.started <- ref.ID
	}
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
		case <-time.After(30 * time.Second): // hang guard
		}
		if c.sawCtx != nil {
			c.sawCtx <- ctx.Err()
		}
		if ctx.Err() != nil {
			return store.Fetched{}, ctx.Err()
		}
	}
	if c.failErr != nil && ref.ID == c.failID {
		return store.Fetched{}, c.failErr
	}
	return c.f.Fetch(ctx, ref)
}

// waitFor polls cond until it holds, failing the test after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
