package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/nowhere-boot/nowhere/internal/index"
)

// dataRegion returns a MiB-aligned offset where the image has span bytes of stored (not
// zero) data, followed within the next MiB by the start of another stored chunk when
// needNext is set.
func dataRegion(t *testing.T, ix *index.Index, span int64, needNext bool) int64 {
	t.Helper()
	for r := int64(0); r+span+1<<20 <= ix.Size; r += 1 << 20 {
		ok := true
		for i := ix.Find(r); i < len(ix.Entries) && ix.Entries[i].Off < r+span; i++ {
			if ix.Entries[i].Zero {
				ok = false
				break
			}
		}
		if ok && (!needNext || len(entriesStartingIn(ix, r+span, r+span+1<<20)) > 0) {
			return r
		}
	}
	t.Fatalf("image %s has no %d-byte run of stored data", ix.Name, span)
	return 0
}

// entriesStartingIn returns the stored entries whose first byte lies in [lo, hi).
func entriesStartingIn(ix *index.Index, lo, hi int64) []index.Entry {
	var out []index.Entry
	for i := ix.Find(lo); i < len(ix.Entries) && ix.Entries[i].Off < hi; i++ {
		if e := ix.Entries[i]; !e.Zero && e.Off >= lo {
			out = append(out, e)
		}
	}
	return out
}

// entriesOverlapping returns the stored entries with a byte in [lo, hi).
func entriesOverlapping(ix *index.Index, lo, hi int64) []index.Entry {
	var out []index.Entry
	for i := ix.Find(lo); i < len(ix.Entries) && ix.Entries[i].Off < hi; i++ {
		if e := ix.Entries[i]; !e.Zero {
			out = append(out, e)
		}
	}
	return out
}

// alignedBuf returns n bytes aligned for O_DIRECT.
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	skip := (4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)) & 4095
	return b[skip : skip+n]
}

// preadRetryingEINTR is pread as os.File does it: the Go runtime preempts goroutines with
// SIGURG, the kernel turns a signal during a FUSE read into an INTERRUPT, and nowhere
// answers an interrupted read with EINTR (it cancels the fetch), so a raw pread may return
// EINTR and must be retried.
func preadRetryingEINTR(fd int, buf []byte, off int64) (int, error) {
	for {
		n, err := syscall.Pread(fd, buf, off)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

func readImageRange(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConcurrentReadersFetchEachChunkOnce starts 16 readers on the same 4 MiB of the
// mounted file at once, with O_DIRECT so every one of them reaches nowhere (no page cache
// in between): the server must see each chunk requested exactly once.
func TestConcurrentReadersFetchEachChunkOnce(t *testing.T) {
	f := getFixture(t)
	ix := loadIndex(t, f.store, "ext4", 1)
	const span = 4 << 20
	off := dataRegion(t, ix, span, false)
	want := readImageRange(t, f.images["ext4"], off, span)
	for _, sk := range serverKinds {
		t.Run(sk.name, func(t *testing.T) {
			srv := sk.start(t, f.store)
			m := mountDaemon(t, srv.url+"/images/ext4", "ext4", "--debug")
			const readers = 16
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, readers)
			for range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fd, err := syscall.Open(m.file, syscall.O_RDONLY|syscall.O_DIRECT, 0)
					if err != nil {
						errs <- err
						return
					}
					defer syscall.Close(fd)
					buf := alignedBuf(1 << 20)
					<-start
					for pos := int64(0); pos < span; pos += 1 << 20 {
						n, err := preadRetryingEINTR(fd, buf, off+pos)
						if err != nil || n != len(buf) {
							errs <- fmt.Errorf("pread at %d: %d bytes, %v", off+pos, n, err)
							return
						}
						if !bytes.Equal(buf, want[pos:pos+1<<20]) {
							errs <- fmt.Errorf("pread at %d: wrong bytes", off+pos)
							return
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			m.unmount(t)
			srv.Stop(t)
			// Every reader's request reached nowhere: nothing in the kernel merged them.
			perOffset := make(map[int64]int)
			for _, mm := range fuseRead.FindAllStringSubmatch(readFile(m.log), -1) {
				o, _ := strconv.ParseInt(mm[1], 10, 64)
				perOffset[o]++
			}
			for pos := int64(0); pos < span; pos += 1 << 20 {
				if n := perOffset[off+pos]; n < readers { // more when an interrupted read was retried
					t.Errorf("FUSE saw %d reads at %d, want %d (one per reader)", n, off+pos, readers)
				}
			}
			gets := chunkGets(srv.Requests(t))
			need := entriesOverlapping(ix, off, off+span)
			for _, e := range need {
				if n := gets[chunkURLPath(e)]; n != 1 {
					t.Errorf("chunk at %d (%s) requested %d times, want once", e.Off, chunkURLPath(e), n)
				}
			}
			for p, n := range gets {
				if n != 1 {
					t.Errorf("%s requested %d times", p, n)
				}
			}
			t.Logf("%d readers x %d MiB: %d chunks needed, %d chunk requests in all (read-ahead included)",
				readers, span>>20, len(need), len(gets))
		})
	}
}

// TestSequentialReadsFetchAhead reads 4 MiB sequentially with O_DIRECT (so the kernel
// reads nothing ahead by itself): with read-ahead on, chunks that start after the last
// byte read are requested; with --readahead 0 they never are.
func TestSequentialReadsFetchAhead(t *testing.T) {
	f := getFixture(t)
	ix := loadIndex(t, f.store, "ext4", 1)
	const span = 4 << 20
	off := dataRegion(t, ix, span, true)
	ahead := entriesStartingIn(ix, off+span, off+span+1<<20)
	isAhead := func(reqs []request) bool {
		gets := chunkGets(reqs)
		for _, e := range ahead {
			if gets[chunkURLPath(e)] > 0 {
				return true
			}
		}
		return false
	}
	dd := func(m *fuseMount) {
		mustRun(t, "dd", "if="+m.file, "of=/dev/null", "bs=1M", "iflag=direct",
			"skip="+strconv.FormatInt(off>>20, 10), "count="+strconv.Itoa(span>>20))
	}

	srv := startNowhereServe(t, f.store)
	m := mountDaemon(t, srv.url+"/images/ext4", "ext4")
	dd(m)
	// Read-ahead runs in the background: wait (bounded) for its requests to show up.
	if !waitFor(20*time.Second, func() bool { return isAhead(srv.Requests(t)) }) {
		t.Errorf("after reading [%d, %d) sequentially, none of the %d chunks starting in the next MiB was requested",
			off, off+span, len(ahead))
	}

	base := startNowhereServe(t, f.store)
	m0 := mountDaemon(t, base.url+"/images/ext4", "ext4", "--readahead", "0")
	dd(m0)
	m0.unmount(t)
	base.Stop(t)
	if isAhead(base.Requests(t)) {
		t.Errorf("with --readahead 0, chunks after the bytes read were requested")
	}
}

var fuseRead = regexp.MustCompile(`rx \d+: READ n\d+ \{Fh \d+ \[(\d+) \+(\d+)\)`)

// TestWholeFileReadUsesLargeRequests reads the whole mounted file with dd bs=1M O_DIRECT
// and checks, from the FUSE debug log, that the kernel sent 1 MiB requests (far fewer
// requests than chunks: one request carries many chunks), that the bytes are the image's,
// and from the access log that each chunk was fetched exactly once despite read-ahead.
func TestWholeFileReadUsesLargeRequests(t *testing.T) {
	f := getFixture(t)
	ix := loadIndex(t, f.store, "squashfs", 1)
	srv := startNowhereServe(t, f.store)
	m := mountDaemon(t, srv.url+"/images/squashfs", "squashfs", "--debug")
	out := filepath.Join(t.TempDir(), "copy.img")
	mustRun(t, "dd", "if="+m.file, "of="+out, "bs=1M", "iflag=direct")
	got, err := fileSHA256(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fileSHA256(f.images["squashfs"])
	if got != want {
		t.Fatalf("whole file read: sha256 %s, want %s (the image's)", got, want)
	}
	m.unmount(t)
	srv.Stop(t)

	reads, largest := 0, 0
	for _, mm := range fuseRead.FindAllStringSubmatch(readFile(m.log), -1) {
		n, _ := strconv.Atoi(mm[2])
		reads++
		largest = max(largest, n)
	}
	st := ix.Stats()
	t.Logf("%d-byte image, %d stored chunks: %d FUSE reads, largest %d bytes", ix.Size, st.Unique, reads, largest)
	if largest < 1<<20 {
		t.Errorf("largest FUSE read %d bytes, want 1 MiB (max_read)", largest)
	}
	if maxReads := int(ix.Size>>20) + 2; reads == 0 || reads > maxReads {
		t.Errorf("%d FUSE reads for a %d-byte file read 1 MiB at a time, want 1..%d", reads, ix.Size, maxReads)
	}
	if reads > st.Chunks/4 {
		t.Errorf("%d FUSE reads for %d chunks: requests do not carry several chunks each", reads, st.Chunks)
	}
	gets := chunkGets(srv.Requests(t))
	for _, e := range ix.Entries {
		if !e.Zero && gets[chunkURLPath(e)] != 1 {
			t.Errorf("chunk at %d requested %d times, want once", e.Off, gets[chunkURLPath(e)])
		}
	}
	if len(gets) != st.Unique {
		t.Errorf("%d distinct chunks requested, the image has %d", len(gets), st.Unique)
	}
}
