package store

import (
	"context"
	"errors"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// Cache returns a Fetcher that keeps every chunk it fetches through inner in dir (a local
// store with the same layout, so it can itself be served or used as a seed). A cached chunk
// is verified when read back; a corrupt one is dropped and fetched again.
func Cache(inner Fetcher, dir *Dir, log func(string, ...any)) Fetcher {
	return &cache{inner: inner, dir: dir, log: log}
}

type cache struct {
	inner Fetcher
	dir   *Dir
	log   func(string, ...any)
}

func (c *cache) Fetch(ctx context.Context, ref chunk.Ref) (Fetched, error) {
	cached := ref
	cached.Stored = 0 // the cache wrote the file itself; its size need not match the index
	if raw, err := c.dir.Chunk(ctx, cached); err == nil {
		plain, derr := chunk.Decode(nil, ref.ID, int(ref.Len), raw)
		if derr == nil {
			return Fetched{Raw: raw, Plain: plain}, nil
		}
		if c.log != nil {
			c.log("cache %s: dropping corrupt chunk %s: %v", c.dir, ref.ID, derr)
		}
		_ = c.dir.RemoveChunk(ctx, ref.ID)
	} else if !errors.Is(err, ErrNotFound) && c.log != nil {
		c.log("cache %s: %v", c.dir, err)
	}
	f, err := c.inner.Fetch(ctx, ref)
	if err != nil {
		return f, err
	}
	if _, err := c.dir.PutChunk(ctx, ref.ID, f.Raw); err != nil && c.log != nil {
		c.log("cache %s: cannot keep chunk %s: %v", c.dir, ref.ID, err) // a full disk must not fail reads
	}
	return f, nil
}
