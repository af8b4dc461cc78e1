package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
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

// LockStore is Lock as a Locker: a flock is never lost while the process lives, so the
// context is ctx itself.
func (d *Dir) LockStore(ctx context.Context, exclusive bool, wait func()) (HeldLock, context.Context, error) {
	unlock, err := d.Lock(exclusive, wait)
	if err != nil {
		return nil, nil, err
	}
	return dirLock(unlock), ctx, nil
}

// dirLock is a Dir's held flock: its unlock function.
type dirLock func()

func (l dirLock) Unlock()     { l() }
func (l dirLock) Held() error { return nil }

// TempPrefix starts the names of the temporary files a Dir writes before renaming them
// into place (chunks and metadata files alike). A writer interrupted between the two
// (a killed pack or sync, a crash) leaves one behind; nothing else ever removes it.
const TempPrefix = ".tmp-"

// TempFile is a temporary file left in a directory store.
type TempFile struct {
	Name string // relative to the store, e.g. chunks/1a2b/.tmp-1a2b....cacnk-0123456789ab
	Size int64
	Mod  time.Time
}

// TempFiles calls fn for every temporary file in the store, wherever a writer puts them
// (chunks/ fan-out directories, images/NAME/, the top).
func (d *Dir) TempFiles(ctx context.Context, fn func(TempFile) error) error {
	return fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != "." {
				return nil // removed meanwhile
			}
			return err
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), TempPrefix) {
			return ctx.Err()
		}
		info, err := e.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		if err := fn(TempFile{Name: p, Size: info.Size(), Mod: info.ModTime()}); err != nil {
			return err
		}
		return ctx.Err()
	})
}

// RemoveTemp removes a temporary file TempFiles reported.
func (d *Dir) RemoveTemp(ctx context.Context, name string) error {
	if !strings.HasPrefix(path.Base(name), TempPrefix) {
		return fmt.Errorf("%s/%s: not a temporary file", d.path, name)
	}
	return d.root.Remove(name)
}
