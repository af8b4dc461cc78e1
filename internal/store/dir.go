package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// Dir is a store in a local directory. All access goes through an os.Root, so names from
// indexes or users can never reach outside the directory, through ".." or symlinks; chunk
// writes go through a handle on chunks/ opened by the root, one directory level at a time,
// never following a symlink (dirchunk.go).
type Dir struct {
	path string
	root *os.Root

	mu        sync.Mutex
	chunks    *os.File // chunks/, opened through root on first use (dirchunk.go)
	chunksRaw int      // its descriptor
}

// OpenDir opens an existing store directory.
func OpenDir(dir string) (*Dir, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, unwrapPath(err))
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("store %s: not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, unwrapPath(err))
	}
	return &Dir{path: dir, root: root}, nil
}

// CreateDir opens a store directory, creating it (and its parents) when missing.
func CreateDir(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, unwrapPath(err))
	}
	d, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return nil, fmt.Errorf("store %s: not writable: %v", dir, err)
	}
	return d, nil
}

// Path returns the directory.
func (d *Dir) Path() string { return d.path }

func (d *Dir) String() string { return d.path }

// Close releases the directory handle.
func (d *Dir) Close() error {
	d.mu.Lock()
	if d.chunks != nil {
		_ = d.chunks.Close()
		d.chunks = nil
	}
	d.mu.Unlock()
	return d.root.Close()
}

func (d *Dir) Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	limit := int64(chunk.MaxSize + 1<<16)
	if ref.Stored > 0 {
		limit = int64(ref.Stored)
	}
	return d.read(ChunkPath(ref.ID), limit)
}

func (d *Dir) File(ctx context.Context, name string, max int64) ([]byte, error) {
	return d.read(name, max)
}

func (d *Dir) read(name string, max int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO put where a file should be would otherwise block forever;
	// it does not change reads of regular files, and anything else is refused below.
	f, err := d.root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s/%s: %w", d.path, name, ErrNotFound)
		}
		return nil, fmt.Errorf("%s/%s: %w", d.path, name, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s/%s: not a regular file", d.path, name)
	}
	if st.Size() > max {
		return nil, &TooLargeError{What: d.path + "/" + name, Limit: max}
	}
	buf := make([]byte, st.Size())
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", d.path, name, err)
	}
	return buf, nil
}

func (d *Dir) PutFile(ctx context.Context, name string, data []byte) error {
	return d.writeAtomic(name, data, true, false)
}

// CreateFile is PutFile for a file that must not exist yet: a version claimed by two
// packs at once goes to one of them, the other gets fs.ErrExist (ExclusiveWriter). The
// complete temporary file is hard-linked into place, which fails if the name is taken.
func (d *Dir) CreateFile(ctx context.Context, name string, data []byte) error {
	return d.writeAtomic(name, data, true, true)
}

// writeAtomic writes to a temporary name in the same directory and renames it into place,
// so a reader (or a crash) sees the old file or the whole new one, never a part.
// Metadata files are fsynced. (Chunks take a faster path of their own: dirchunk.go.)
func (d *Dir) writeAtomic(name string, data []byte, durable, exclusive bool) error {
	dir := path.Dir(name)
	if err := d.root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s/%s: %w", d.path, dir, unwrapPath(err))
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(dir, TempPrefix+path.Base(name)+"-"+hex.EncodeToString(rnd[:]))
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", d.path, tmp, unwrapPath(err))
	}
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && exclusive {
		err = d.root.Link(tmp, name)
		_ = d.root.Remove(tmp)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", d.path, name, unwrapPath(err))
		}
		return nil
	}
	if err == nil {
		err = d.root.Rename(tmp, name)
	}
	if err != nil {
		_ = d.root.Remove(tmp)
		return fmt.Errorf("%s/%s: %w", d.path, name, unwrapPath(err))
	}
	return nil
}

// Sync flushes everything written to the store's filesystem (syncfs), so chunks are on
// disk before an index that references them is published.
func (d *Dir) Sync() error {
	f, err := d.root.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("%s: syncfs: %w", d.path, err)
	}
	return nil
}

func (d *Dir) Files(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	start := strings.TrimSuffix(prefix, "/")
	if start == "" {
		start = "."
	}
	err := fs.WalkDir(d.root.FS(), start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return fs.SkipAll
			}
			return err
		}
		if p == "chunks" {
			return fs.SkipDir
		}
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), TempPrefix) {
			out = append(out, p)
		}
		return ctx.Err()
	})
	return out, err
}

func (d *Dir) Chunks(ctx context.Context, fn func(id chunk.ID, size int64) error) error {
	err := fs.WalkDir(d.root.FS(), "chunks", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == "chunks" {
				return fs.SkipAll
			}
			return err
		}
		if !e.Type().IsRegular() || !strings.HasSuffix(p, ".cacnk") {
			return ctx.Err()
		}
		id, perr := chunk.ParseID(strings.TrimSuffix(e.Name(), ".cacnk"))
		if perr != nil || ChunkPath(id) != p {
			return ctx.Err() // not a chunk file in its place: not ours to report here
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if err := fn(id, info.Size()); err != nil {
			return err
		}
		return ctx.Err()
	})
	return err
}

func (d *Dir) RemoveChunk(ctx context.Context, id chunk.ID) error {
	return d.root.Remove(ChunkPath(id))
}

// unwrapPath drops the *PathError wrapper, whose path is relative to the root and would
// repeat what our messages already say.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
