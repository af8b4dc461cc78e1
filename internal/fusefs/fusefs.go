// Package fusefs exposes images as read-only files in a FUSE filesystem. It only
// translates FUSE requests into reads; fetching, caching and retry policy live below it.
package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Content is what a file serves: reads with a context (so an interrupted read cancels its
// fetch) and a fixed size.
type Content interface {
	ReadAtContext(ctx context.Context, p []byte, off int64) (int, error)
	Size() int64
}

// File is one file in the mount.
type File struct {
	Name    string
	Content Content
	// Live content changes while mounted (a status report): the kernel must not cache
	// it, and reads go to Content even past Size.
	Live bool
}

// Options for Mount.
type Options struct {
	FsName string // shown as the source in /proc/mounts
	// Strict forbids falling back to the fusermount helper: an initramfs has none, and
	// a silent fallback would fail later with a confusing error.
	Strict bool
	Debug  bool
	Log    func(format string, args ...any) // read errors; nil: log.Printf
}

// MaxRead is the largest read the kernel sends us: large requests let one FUSE round trip
// carry many chunks.
const MaxRead = 1 << 20

// Mount serves files at mountpoint, read-only, and returns once the mount is up.
func Mount(mountpoint string, files []File, opt Options) (*fuse.Server, error) {
	if err := checkMountpoint(mountpoint); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("mount %s: /dev/fuse is missing (load the fuse module, or run where FUSE is available)", mountpoint)
	}
	logf := opt.Log
	if logf == nil {
		logf = log.Printf
	}
	root := &dir{files: files, logf: logf}
	long := 24 * time.Hour // images are immutable: the kernel may cache names and sizes
	fsName := opt.FsName
	if fsName == "" {
		fsName = "nowhere"
	}
	srv, err := fs.Mount(mountpoint, root, &fs.Options{
		EntryTimeout: &long,
		AttrTimeout:  &long,
		MountOptions: fuse.MountOptions{
			FsName:            fsName,
			Name:              "nowhere",
			Options:           []string{"ro"},
			AllowOther:        os.Geteuid() == 0,
			MaxWrite:          MaxRead,
			MaxReadAhead:      MaxRead,
			MaxBackground:     64,
			DirectMount:       true,
			DirectMountStrict: opt.Strict,
			DisableXAttrs:     true,
			Debug:             opt.Debug,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return srv, nil
}

func checkMountpoint(mnt string) error {
	st, err := os.Stat(mnt)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mountpoint %s does not exist", mnt)
		}
		return fmt.Errorf("mountpoint %s: %v", mnt, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("mountpoint %s is not a directory", mnt)
	}
	if busy, _ := IsMountpoint(mnt); busy {
		return fmt.Errorf("mountpoint %s is busy: something is already mounted there", mnt)
	}
	return nil
}

// IsMountpoint reports whether path is the root of a mount (its device differs from its
// parent's, or it is listed in /proc/self/mountinfo).
func IsMountpoint(path string) (bool, error) {
	var st, pst syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return false, err
	}
	if err := syscall.Stat(path+"/..", &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev || st.Ino == pst.Ino, nil
}

type dir struct {
	fs.Inode
	files []File
	logf  func(string, ...any)
}

var _ = (fs.NodeOnAdder)((*dir)(nil))

func (d *dir) OnAdd(ctx context.Context) {
	for i, f := range d.files {
		ch := d.NewPersistentInode(ctx, &file{c: f.Content, name: f.Name, live: f.Live, logf: d.logf},
			fs.StableAttr{Mode: syscall.S_IFREG, Ino: uint64(i + 2)})
		d.AddChild(f.Name, ch, false)
	}
}

type file struct {
	fs.Inode
	c    Content
	name string
	live bool
	logf func(string, ...any)
}

var (
	_ = (fs.NodeGetattrer)((*file)(nil))
	_ = (fs.NodeOpener)((*file)(nil))
	_ = (fs.NodeReader)((*file)(nil))
)

func (f *file) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(f.c.Size())
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 4096
	return 0
}

func (f *file) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return nil, 0, syscall.EROFS
	}
	if f.live {
		return nil, fuse.FOPEN_DIRECT_IO, 0
	}
	// The content never changes, so the kernel may keep its page cache across opens.
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (f *file) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	// FUSE interrupts (a signal to the reading process) are not passed down: answering
	// EINTR would surface in read(2) even for handlers installed with SA_RESTART, and the
	// fetch would be thrown away only to be started again. The kernel does not wait for
	// us when the signal is fatal; otherwise the read completes and the chunk is cached.
	n, err := f.c.ReadAtContext(context.WithoutCancel(ctx), dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		f.logf("read %s at %d (+%d): %v", f.name, off, len(dest), err)
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:n]), 0
}
