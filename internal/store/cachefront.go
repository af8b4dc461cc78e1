package store

import (
	"context"
	"errors"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// Front returns a Fetcher that serves a chunk from the cache, else from local (keeping
// what local returns in the cache), else from next. next must keep what it fetches
// itself: it is a peer node, which already reads through this same cache (peer.Config
// Cache), so wrapping it in Fetcher would look every chunk up twice and count each miss
// twice in the cache metrics. local answers ErrNotFound for a chunk it does not hold
// (a seed set over NotHeld).
//
// It exists so that the seeds sit behind the cache with LAN peers too: a chunk a seed
// supplied is kept, as docs/updates.md promises, and the next mount finds it there.
func (c *DiskCache) Front(local, next Fetcher) Fetcher { return cacheFront{c, local, next} }

type cacheFront struct {
	c           *DiskCache
	local, next Fetcher
}

func (f cacheFront) Fetch(ctx context.Context, ref chunk.Ref) (Fetched, error) {
	if got, ok := f.c.get(ctx, ref); ok {
		f.c.metrics.CacheLookup(true)
		return got, nil
	}
	got, err := f.local.Fetch(ctx, ref)
	if err == nil {
		f.c.metrics.CacheLookup(false) // next counts its own misses
		if got.Raw != nil {
			f.c.put(ctx, ref.ID, got.Raw)
		}
		return got, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return got, err
	}
	return f.next.Fetch(ctx, ref)
}

// NotHeld is a Fetcher that holds nothing: the inner fetcher of a local source that
// should only answer for what it has (see Front).
var NotHeld Fetcher = notHeld{}

type notHeld struct{}

func (notHeld) Fetch(ctx context.Context, ref chunk.Ref) (Fetched, error) {
	return Fetched{}, ErrNotFound
}

var (
	_ Fetcher = cacheFront{}
	_ Fetcher = notHeld{}
)
