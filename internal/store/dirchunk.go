package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// The chunk write path of Dir. Packing writes thousands of small chunk files, and going
// through os.Root for each step (existence check, MkdirAll, create, rename) resolves every
// path component again: about 30 system calls per chunk, most of pack's system time on a
// disk. Here the store keeps one handle on chunks/ (opened through the root) and works
// inside a chunk's fan-out directory, opened once per call with O_NOFOLLOW: every name
// below is a single component looked up without following symlinks, so nothing escapes
// the store, as with os.Root. A new chunk costs about 7 system calls: open the fan-out
// directory (creating it the first time), one existence check, create the temporary file,
// write, close, rename into place, close the directory.

// chunksFd returns the store's handle on chunks/, opening it the first time (and creating
// it when create is set). It reports fs.ErrNotExist when it is missing and create is not.
func (d *Dir) chunksFd(create bool) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.chunks != nil {
		return d.chunksRaw, nil
	}
	if create {
		if err := d.root.Mkdir("chunks", 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return -1, err
		}
	}
	f, err := d.root.OpenFile("chunks", os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	sc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return -1, err
	}
	fd := -1
	if err := sc.Control(func(raw uintptr) { fd = int(raw) }); err != nil {
		f.Close()
		return -1, err
	}
	d.chunks, d.chunksRaw = f, fd
	return fd, nil
}

// fanout opens chunks/<first 4 hex> of id, creating it (and chunks/) when create is set.
// The caller closes the returned descriptor.
func (d *Dir) fanout(id chunk.ID, create bool) (int, error) {
	top, err := d.chunksFd(create)
	if err != nil {
		return -1, err
	}
	prefix := id.String()[:4]
	for try := 0; ; try++ {
		fd, err := openatRetry(top, prefix, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil || !create || try > 0 || !errors.Is(err, unix.ENOENT) {
			return fd, err
		}
		if err := unix.Mkdirat(top, prefix, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, err
		}
	}
}

// statChunk reports the size of id's file in its fan-out directory dir, and whether it
// counts as stored: a regular file that is not empty (an empty one can only be left by a
// crash before the data reached the disk).
func statChunk(dir int, name string) (int64, bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, false, fmt.Errorf("not a regular file")
	}
	return st.Size, st.Size > 0, nil
}

func (d *Dir) HasChunk(ctx context.Context, id chunk.ID) (int64, bool, error) {
	dir, err := d.fanout(id, false)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%s/%s: %w", d.path, ChunkPath(id), unwrapPath(err))
	}
	defer unix.Close(dir)
	size, ok, err := statChunk(dir, chunkName(id))
	if err != nil {
		return 0, false, fmt.Errorf("%s/%s: %w", d.path, ChunkPath(id), err)
	}
	return size, ok, nil
}

// PutChunk writes the chunk to a temporary name in its fan-out directory and renames it
// into place, so a reader (or a crash) sees no file or the whole chunk, never a part. The
// rename does not replace a chunk another writer put there meanwhile. Chunks are not
// fsynced one by one: Sync flushes them together before an index that references them is
// written.
func (d *Dir) PutChunk(ctx context.Context, id chunk.ID, data []byte) (bool, error) {
	wrote, err := d.putChunk(id, data)
	if err != nil {
		return false, fmt.Errorf("%s/%s: %w", d.path, ChunkPath(id), unwrapPath(err))
	}
	return wrote, nil
}

func (d *Dir) putChunk(id chunk.ID, data []byte) (bool, error) {
	dir, err := d.fanout(id, true)
	if err != nil {
		return false, err
	}
	defer unix.Close(dir)
	name := chunkName(id)
	if _, ok, err := statChunk(dir, name); err != nil || ok {
		return false, err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := TempPrefix + name + "-" + hex.EncodeToString(rnd[:])
	if err := writeNew(dir, tmp, data); err != nil {
		_ = unix.Unlinkat(dir, tmp, 0)
		return false, err
	}
	err = unix.Renameat2(dir, tmp, dir, name, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		// Another writer got there first, or a crash left an empty file: keep a whole
		// chunk, replace an empty one.
		if _, ok, serr := statChunk(dir, name); serr != nil || ok {
			_ = unix.Unlinkat(dir, tmp, 0)
			return false, serr
		}
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		// The filesystem cannot rename without replacing: replacing a chunk with the same
		// bytes (its name is their hash) is harmless.
	default:
		_ = unix.Unlinkat(dir, tmp, 0)
		return false, err
	}
	if err := unix.Renameat(dir, tmp, dir, name); err != nil {
		_ = unix.Unlinkat(dir, tmp, 0)
		return false, err
	}
	return true, nil
}

// writeNew creates name in dir (it must not exist) and writes data to it.
func writeNew(dir int, name string, data []byte) error {
	fd, err := openatRetry(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	for len(data) > 0 && err == nil {
		var n int
		n, err = unix.Write(fd, data)
		switch {
		case errors.Is(err, unix.EINTR):
			err = nil
		case err == nil && n == 0:
			err = unix.EIO
		}
		data = data[max(n, 0):]
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}

func openatRetry(dir int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dir, name, flags, mode)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// chunkName is the file name of a chunk inside its fan-out directory.
func chunkName(id chunk.ID) string { return id.String() + ".cacnk" }
