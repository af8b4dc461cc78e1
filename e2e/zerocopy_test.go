package e2e

import (
	"net"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// TestMountReadsAreZeroCopy reads the whole image through `nowhere mount` (real FUSE, the
// stack mount composes: a profile recording over the image reader over the prefetcher)
// and checks from its metrics that every read was answered with views of the chunks
// (ReadSlices: one writev, no copy). A wrapper that hides ReadSlices makes it 0.
func TestMountReadsAreZeroCopy(t *testing.T) {
	f := getFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := startNowhereServe(t, f.store)
	m := mountDaemon(t, srv.url+"/images/squashfs", "squashfs", "--metrics", addr)
	mustRun(t, "dd", "if="+m.file, "of=/dev/null", "bs=1M", "iflag=direct")
	got := testutil.Scrape(t, "http://"+addr+"/metrics")
	reads, zc := got.Sum("nowhere_reads_total", nil), got.Sum("nowhere_zero_copy_reads_total", nil)
	t.Logf("%v reads, %v zero-copy", reads, zc)
	if reads == 0 || zc != reads {
		t.Fatalf("%v of %v reads through the mount took the zero-copy path (ReadSlices), want all", zc, reads)
	}
}
