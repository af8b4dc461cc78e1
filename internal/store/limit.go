package store

import (
	"context"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// Limit returns a Fetcher that lets at most n fetches run through f at once; the others
// wait their turn (or for their context). Limit(f, 1) fetches one chunk at a time, as
// HTTP-FUSE KNOPPIX (2005) did: the baseline the boot benchmark compares against
// (nowhere.parallel=1, mount --parallel 1). n <= 0 returns f unchanged.
func Limit(f Fetcher, n int) Fetcher {
	if n <= 0 {
		return f
	}
	return &limited{f: f, slots: make(chan struct{}, n)}
}

type limited struct {
	f     Fetcher
	slots chan struct{}
}

func (l *limited) Fetch(ctx context.Context, ref chunk.Ref) (Fetched, error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return Fetched{}, ctx.Err()
	}
	defer func() { <-l.slots }()
	return l.f.Fetch(ctx, ref)
}
