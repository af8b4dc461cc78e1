package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

func TestCache(t *testing.T) {
	ctx := context.Background()
	origin := newDir(t)
	// The origin is reached over real HTTP, like a mount with --cache.
	remote := newHTTP(t, serve(t, origin.Path()).URL)
	c := newChunk(1, 80<<10)
	put(t, origin, c)
	inner := &counting{f: store.Verify(remote)}
	cacheDir := newDir(t)
	var l logs
	f := store.Cache(inner, cacheDir, l.printf)

	got, err := f.Fetch(ctx, c.ref)
	if err != nil || !bytes.Equal(got.Plain, c.plain) || inner.calls.Load() != 1 {
		t.Fatalf("first fetch: %v, %d inner calls", err, inner.calls.Load())
	}
	// Kept in the store layout, so the cache is itself a store.
	cached := filepath.Join(cacheDir.Path(), store.ChunkPath(c.ref.ID))
	if b, err := os.ReadFile(cached); err != nil || !bytes.Equal(b, c.raw) {
		t.Fatalf("cached chunk file %s: %v", cached, err)
	}
	if _, err := store.Verify(cacheDir).Fetch(ctx, c.ref); err != nil {
		t.Fatalf("cache directory is not a valid store: %v", err)
	}

	// Served from the cache without asking the origin.
	got, err = f.Fetch(ctx, c.ref)
	if err != nil || !bytes.Equal(got.Plain, c.plain) || inner.calls.Load() != 1 {
		t.Fatalf("second fetch: %v, %d inner calls; want the cache to answer", err, inner.calls.Load())
	}

	// A corrupted cache file is dropped and fetched again, and the caller gets good bytes.
	if err := os.WriteFile(cached, chunk.Encode(nil, []byte("bit rot")), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = f.Fetch(ctx, c.ref)
	if err != nil || !bytes.Equal(got.Plain, c.plain) || inner.calls.Load() != 2 {
		t.Fatalf("fetch over a corrupt cache file: %v, %d inner calls", err, inner.calls.Load())
	}
	if b, _ := os.ReadFile(cached); !bytes.Equal(b, c.raw) {
		t.Fatal("corrupt cache file not replaced by the good chunk")
	}
	if !strings.Contains(l.String(), "dropping corrupt chunk "+c.ref.ID.String()) {
		t.Fatalf("log: %q", l.String())
	}

	// Errors from the origin come through, and nothing is cached for them.
	missing := newChunk(2, 1000)
	if _, err := f.Fetch(ctx, missing.ref); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing chunk through the cache: %v", err)
	}
	if _, ok, _ := cacheDir.HasChunk(ctx, missing.ref.ID); ok {
		t.Fatal("a failed fetch left a cache entry")
	}
}

// A cache that cannot be written (a full or read-only disk) must not fail reads. A file
// where the chunk directory must go makes every write fail, for root too.
func TestCacheUnwritable(t *testing.T) {
	ctx := context.Background()
	origin := newDir(t)
	c := newChunk(3, 10<<10)
	put(t, origin, c)
	cacheDir := newDir(t)
	blocker := filepath.Join(cacheDir.Path(), "chunks")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	var l logs
	got, err := store.Cache(store.Verify(origin), cacheDir, l.printf).Fetch(ctx, c.ref)
	if err != nil || !bytes.Equal(got.Plain, c.plain) {
		t.Fatalf("fetch with an unwritable cache: %v", err)
	}
	if !strings.Contains(l.String(), "cannot keep chunk") {
		t.Fatalf("log: %q", l.String())
	}
}
