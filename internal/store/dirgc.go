package store

import (
	"context"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// ChunkTimes calls fn for every stored chunk with its size and modification time (what
// garbage collection's grace period looks at).
func (d *Dir) ChunkTimes(ctx context.Context, fn func(id chunk.ID, size int64, mod time.Time) error) error {
	return d.Chunks(ctx, func(id chunk.ID, size int64) error {
		st, err := d.root.Stat(ChunkPath(id))
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(id, size, st.ModTime())
	})
}

// RemoveFile deletes a metadata file (garbage collection of old versions).
func (d *Dir) RemoveFile(ctx context.Context, name string) error {
	return d.root.Remove(name)
}

// TouchChunk marks a chunk as just used (its modification time), so that a garbage
// collection running meanwhile sees it as new.
func (d *Dir) TouchChunk(ctx context.Context, id chunk.ID) error {
	now := time.Now()
	return d.root.Chtimes(ChunkPath(id), now, now)
}
