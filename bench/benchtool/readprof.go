package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// readProf mounts an image of a local store with nowhere's reader and FUSE layer, fills
// the memory cache, then reads the mounted file sequentially several times, dropping just
// that file's pages (fadvise DONTNEED) before each pass, so every byte crosses FUSE. It
// profiles the reading passes: the FUSE path of benchmark 3, without network or disk.
func readProf(args []string) error {
	fl := flag.NewFlagSet("readprof", flag.ContinueOnError)
	cpuprofile := fl.String("cpuprofile", "", "write a CPU profile of the reading passes here")
	passes := fl.Int("passes", 5, "sequential passes over the file")
	bs := fl.Int("bs", 1<<20, "read size")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 2 {
		return errors.New("readprof [flags] STORE/images/NAME MOUNTPOINT")
	}
	ctx := context.Background()
	loc, err := image.ParseLocation(fl.Arg(0))
	if err != nil {
		return err
	}
	s, err := image.OpenStore(loc.Store)
	if err != nil {
		return err
	}
	ix, _, err := image.Load(ctx, s, loc, store.Policy{})
	if err != nil {
		return err
	}
	r := image.NewReader(ix, store.Verify(s), image.Options{CacheBytes: 2*ix.Size + 64<<20})
	buf := make([]byte, 1<<20)
	for off := int64(0); off < ix.Size; off += int64(len(buf)) { // warm nowhere's cache
		if _, err := r.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	mnt := fl.Arg(1)
	srv, err := fusefs.Mount(mnt, []fusefs.File{{Name: ix.Name + ".img", Content: r}}, fusefs.Options{})
	if err != nil {
		return err
	}
	defer func() { _, _ = srv.Unmount(10 * time.Second) }()
	f, err := os.Open(filepath.Join(mnt, ix.Name+".img"))
	if err != nil {
		return err
	}
	defer f.Close()
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rb := make([]byte, *bs)
	for p := 0; p < *passes; p++ {
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return err
		}
		start, cpu0, st0 := time.Now(), cpuTime(), r.Snapshot()
		var n int64
		for off := int64(0); ; {
			k, err := f.ReadAt(rb, off)
			n += int64(k)
			off += int64(k)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
		el, cpu, st := time.Since(start), cpuTime()-cpu0, r.Snapshot()
		reads := st.Reads - st0.Reads
		fmt.Printf("pass %d: %d bytes in %.3f s: %.0f MB/s, %.0f ms CPU per GB (both sides of FUSE), %d FUSE reads of %d KiB on average\n",
			p+1, n, el.Seconds(), float64(n)/el.Seconds()/1e6, cpu.Seconds()*1e3/(float64(n)/1e9), reads, (st.ReadBytes-st0.ReadBytes)/max(reads, 1)>>10)
	}
	return nil
}

// cpuTime is the user and system time this process has used.
func cpuTime() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
