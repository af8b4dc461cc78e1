package store

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

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

// LockPath is the lock file writers and garbage collection share in a directory store.
const LockPath = ".nowhere-lock"

// Lock takes the store's lock: shared for writers that add chunks before an index refers
// to them (pack, sync), exclusive for garbage collection, which must not delete such a
// chunk in between. It waits for the lock; wait is told once when it has to. The lock
// is released by the returned function, or when the process ends (flock).
func (d *Dir) Lock(exclusive bool, wait func()) (unlock func(), err error) {
	f, err := d.root.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", d.path, LockPath, unwrapPath(err))
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		if wait != nil {
			wait()
		}
		if err := unix.Flock(int(f.Fd()), how); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s/%s: %w", d.path, LockPath, err)
		}
	}
	return func() { f.Close() }, nil
}
