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
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Content is what a file serves: reads with a context (so an interrupted read cancels its
// fetch) and a fixed size.
type Content interface {
	ReadAtContext(ctx context.Context, p []byte, off int64) (int, error)
	Size() int64
}

// Slicer is implemented by Content that can answer a read with views of memory it already
// holds (image.Reader.ReadSlices). The reply then goes to the kernel straight from those
// views in one writev, without first copying them into a buffer. The views must not
// change afterwards.
type Slicer interface {
	ReadSlices(ctx context.Context, vecs [][]byte, off int64, n int) ([][]byte, int, error)
}

// maxVecs bounds the views of one reply: writev takes at most IOV_MAX (1024) buffers, and
// go-fuse adds its headers. A read spanning more pieces (tiny chunks) is copied instead.
const maxVecs = 512

// File is one file in the mount.
type File struct {
	Name    string
	Content Content
	// Live content changes while mounted (a status report): the kernel must not cache
	// it, and reads go to Content even past Size.
	Live bool
	// ModTime is the file's modification (and change) time: for an image, when its
	// index was made. Zero shows as the mount's time, not as 1970.
	ModTime time.Time
}

// Options for Mount.
type Options struct {
	FsName string // shown as the source in /proc/mounts
	// Strict forbids falling back to the fusermount helper: an initramfs has none, and
	// a silent fallback would fail later with a confusing error.
	Strict bool
	Debug  bool
	Log    func(format string, args ...any) // read errors; nil: log.Printf
	// Context is the one every read's context derives from: when it ends (the owner's
	// shutdown), reads in flight and reads still waiting for a mirror get EIO at once.
	// nil: reads end only with the mount (Server).
	Context context.Context
}

// MaxRead is the largest read the kernel sends us: large requests let one FUSE round trip
// carry many chunks.
const MaxRead = 1 << 20

// Mount serves files at mountpoint, read-only, and returns once the mount is up.
func Mount(mountpoint string, files []File, opt Options) (*Server, error) {
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
	// Files without a time of their own, and the directory, show when they were mounted.
	now := time.Now()
	files = append([]File(nil), files...)
	for i := range files {
		if files[i].ModTime.IsZero() {
			files[i].ModTime = now
		}
	}
	base := opt.Context
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithCancelCause(base)
	rs := &reads{ctx: ctx}
	root := &dir{files: files, logf: logf, mtime: now, reads: rs}
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
			MaxReadAhead:      ReadAhead,
			MaxBackground:     64,
			DirectMount:       true,
			DirectMountStrict: opt.Strict,
			DisableXAttrs:     true,
			// Splicing only helps data that sits in a file; ours is in memory. With it on,
			// go-fuse sets up a pipe for every read and, for 1 MiB reads, fails (pipes hold
			// at most 1 MiB by default) and logs the failure each time.
			DisableSplice: true,
			Debug:         opt.Debug,
		},
	})
	if err != nil {
		cancel(err)
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	setReadAhead(mountpoint, ReadAhead)
	return newServer(srv, mountpoint, opt.Strict, rs, cancel, logf), nil
}

// ReadAhead is the kernel's read-ahead for the mounted files. The kernel takes the smaller
// of the FUSE server's max_readahead and the mount's backing-device read-ahead, which
// starts at 128 KiB: left alone, every sequential read reaches us as 128 KiB requests,
// whatever MaxRead allows. With 1 MiB the kernel sends MaxRead-sized requests. More does
// not speed up sequential reads (the reader fetches ahead itself) but slows scattered ones
// (a loop-mounted filesystem): the kernel's first read-ahead at a new place grows with
// this limit, and a FUSE read returns only when all of it is there.
const ReadAhead = 1 << 20

// setReadAhead raises the read-ahead of the FUSE mount's backing device
// (/sys/class/bdi/MAJOR:MINOR/read_ahead_kb). Files opened afterwards use it. It needs
// root and sysfs; without them reads still work, in smaller requests.
func setReadAhead(mountpoint string, bytes int) {
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return
	}
	bdi := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	_ = os.WriteFile(bdi, []byte(strconv.Itoa(bytes>>10)), 0)
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
	mtime time.Time
	reads *reads
}

var (
	_ = (fs.NodeOnAdder)((*dir)(nil))
	_ = (fs.NodeGetattrer)((*dir)(nil))
)

func (d *dir) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o555
	setTimes(&out.Attr, d.mtime)
	return 0
}

// setTimes gives a node one time for its access, modification and change times.
func setTimes(a *fuse.Attr, t time.Time) {
	a.SetTimes(&t, &t, &t)
}

func (d *dir) OnAdd(ctx context.Context) {
	for i, f := range d.files {
		ch := d.NewPersistentInode(ctx, &file{c: f.Content, name: f.Name, live: f.Live, mtime: f.ModTime, logf: d.logf, reads: d.reads},
			fs.StableAttr{Mode: syscall.S_IFREG, Ino: uint64(i + 2)})
		d.AddChild(f.Name, ch, false)
	}
}

type file struct {
	fs.Inode
	c     Content
	name  string
	live  bool
	mtime time.Time
	logf  func(string, ...any)
	reads *reads
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
	setTimes(&out.Attr, f.mtime)
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

func (f *file) Read(_ context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	// The read answers to the mount's context, not to the kernel's request. FUSE
	// interrupts (a signal to the reading process) are not passed down: answering EINTR
	// would surface in read(2) even for handlers installed with SA_RESTART, and the fetch
	// would be thrown away only to be started again; the read completes and the chunk is
	// cached. (A reader killed while we answer waits for the answer in the kernel.) The
	// mount's context ends when the mount does, so no read, however long it would wait
	// for a mirror, holds an unmount or the process's exit.
	ctx := f.reads.ctx
	f.reads.inFlight.Add(1)
	defer f.reads.inFlight.Add(-1)
	if s, ok := f.c.(Slicer); ok {
		vecs, n, err := s.ReadSlices(ctx, make([][]byte, 0, 24), off, len(dest))
		if errno := f.readErrno(err, off, len(dest)); errno != 0 {
			return nil, errno
		}
		if len(vecs) <= maxVecs {
			return fuse.ReadResultVector(vecs), 0
		}
		k := 0
		for _, v := range vecs {
			k += copy(dest[k:], v)
		}
		return fuse.ReadResultData(dest[:n]), 0
	}
	n, err := f.c.ReadAtContext(ctx, dest, off)
	if errno := f.readErrno(err, off, len(dest)); errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// readErrno turns a read error into what the reading process sees: nothing for EOF, EIO
// for anything else, logged unless the mount going away cut the read off (those are
// counted, and the owner reports the count in one line: Ending.CutOff).
func (f *file) readErrno(err error, off int64, n int) syscall.Errno {
	if err == nil || errors.Is(err, io.EOF) {
		return 0
	}
	if f.reads.ctx.Err() != nil {
		f.reads.cutOff.Add(1)
		return syscall.EIO
	}
	f.logf("read %s at %d (+%d): %v", f.name, off, n, err)
	return syscall.EIO
}
