package fusefs

import (
	"bytes"
	"context"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// recordingContent serves a pattern and remembers the largest read the kernel asked for.
type recordingContent struct {
	size int64
	mu   sync.Mutex
	max  int
}

func (c *recordingContent) Size() int64 { return c.size }

func (c *recordingContent) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.max = max(c.max, len(p))
	c.mu.Unlock()
	if off >= c.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), c.size-off)
	for i := range p[:n] {
		p[i] = byte((off + int64(i)) / 4096)
	}
	return int(n), nil
}

// Sequential reads must reach the filesystem as MaxRead-sized requests: the kernel's
// default 128 KiB read-ahead for a FUSE mount would otherwise cut them 8-fold.
func TestSequentialReadsArriveInLargeRequests(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Missing(t, "mounting FUSE directly needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Missing(t, "no /dev/fuse in this kernel")
	}
	mnt := t.TempDir()
	c := &recordingContent{size: 16 << 20}
	srv, err := Mount(mnt, []File{{Name: "x.img", Content: c}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = srv.Unmount(10 * time.Second) })
	f, err := os.Open(filepath.Join(mnt, "x.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var total int64
	for {
		n, err := f.Read(buf)
		for i := 0; i < n; i += 4096 {
			if want := byte((total + int64(i)) / 4096); buf[i] != want {
				t.Fatalf("byte at %d: got %d, want %d", total+int64(i), buf[i], want)
			}
		}
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != c.size {
		t.Fatalf("read %d bytes, want %d", total, c.size)
	}
	if c.max < MaxRead {
		t.Fatalf("largest FUSE read was %d bytes, want %d (MaxRead)", c.max, MaxRead)
	}
}

// slicedContent answers reads with views of its data cut into pieces of a fixed size, as
// the image reader does with chunks.
type slicedContent struct {
	data  []byte
	piece int
}

func (c *slicedContent) Size() int64 { return int64(len(c.data)) }

func (c *slicedContent) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	panic("ReadAtContext called although the content is a Slicer")
}

func (c *slicedContent) ReadSlices(ctx context.Context, vecs [][]byte, off int64, n int) ([][]byte, int, error) {
	if off >= int64(len(c.data)) {
		return vecs, 0, io.EOF
	}
	end := min(off+int64(n), int64(len(c.data)))
	got := int(end - off)
	for off < end {
		next := min((off/int64(c.piece)+1)*int64(c.piece), end)
		vecs = append(vecs, c.data[off:next])
		off = next
	}
	return vecs, got, nil
}

// Replies written from views must carry exactly the content: with few large pieces (one
// writev) and with more pieces than one writev takes (copied into one buffer).
func TestSlicerReadsAreExact(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Missing(t, "mounting FUSE directly needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Missing(t, "no /dev/fuse in this kernel")
	}
	data := make([]byte, 6<<20+333)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	for _, piece := range []int{64 << 10, 1 << 10} {
		mnt := t.TempDir()
		srv, err := Mount(mnt, []File{{Name: "x.img", Content: &slicedContent{data: data, piece: piece}}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(mnt, "x.img"))
		if _, uerr := srv.Unmount(10 * time.Second); uerr != nil {
			t.Fatal(uerr)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("pieces of %d bytes: read %d bytes that differ from the content", piece, len(got))
		}
	}
}
