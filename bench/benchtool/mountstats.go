package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// mountStats mounts an image like `nowhere mount` (same reader, mirror set and FUSE layer)
// and, when stopped (SIGTERM/SIGINT), prints what the reader did and the sizes of the
// FUSE reads it got: to see why a cold read takes the time it takes.
func mountStats(args []string) error {
	if len(args) != 2 {
		return errors.New("mountstats SOURCE MOUNTPOINT")
	}
	ctx := context.Background()
	loc, err := image.ParseLocation(args[0])
	if err != nil {
		return err
	}
	s, err := image.OpenStore(loc.Store)
	if err != nil {
		return err
	}
	ix, _, err := image.Load(ctx, s, loc, store.Policy{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	var opt image.Options
	if mb, err := strconv.Atoi(os.Getenv("BENCH_MEMCACHE_MB")); err == nil {
		opt.CacheBytes = int64(mb) << 20
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	set, err := store.NewMirrorSet([]store.Store{s}, store.MirrorOptions{Wait: store.Policy{Timeout: time.Minute, Log: logf}, Log: logf})
	if err != nil {
		return err
	}
	defer set.Close()
	r := image.NewReader(ix, set, opt)
	rc := &sizeCounter{Reader: r, sizes: map[int]int{}}
	srv, err := fusefs.Mount(args[1], []fusefs.File{{Name: ix.Name + ".img", Content: rc}}, fusefs.Options{})
	if err != nil {
		return err
	}
	fmt.Println("mounted")
	if p := os.Getenv("BENCH_CPUPROFILE"); p != "" { // profile the mount's whole life
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-srv.Gone():
	}
	_, _ = srv.Unmount(10 * time.Second)
	st := r.Snapshot()
	fmt.Printf("reads %d (%d MiB), fetches %d (%d MiB stored, %d MiB plain), hits %d, misses %d, prefetches %d, errors %d\n",
		st.Reads, st.ReadBytes>>20, st.Fetches, st.FetchedBytes>>20, st.FetchedPlain>>20, st.Hits, st.Misses, st.Prefetches, st.Errors)
	var keys []int
	for k := range rc.sizes {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	if p := os.Getenv("BENCH_TRACE"); p != "" {
		_ = os.WriteFile(p, []byte(strings.Join(rc.trace, "\n")+"\n"), 0o644)
	}
	for _, k := range keys {
		fmt.Printf("  reads of <= %4d KiB: %d\n", k, rc.sizes[k])
	}
	return nil
}

// sizeCounter counts FUSE reads by size (rounded up to a power of two KiB).
type sizeCounter struct {
	*image.Reader
	mu    sync.Mutex
	sizes map[int]int
	trace []string
}

func (c *sizeCounter) count(off int64, n int, start time.Time) {
	if os.Getenv("BENCH_TRACE") != "" {
		c.mu.Lock()
		c.trace = append(c.trace, fmt.Sprintf("%d %d %d %d", start.UnixMicro(), off, n, time.Since(start).Microseconds()))
		c.mu.Unlock()
	}
	k := 4
	for k<<10 < n {
		k *= 2
	}
	c.mu.Lock()
	c.sizes[k]++
	c.mu.Unlock()
}

func (c *sizeCounter) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	defer c.count(off, len(p), time.Now())
	return c.Reader.ReadAtContext(ctx, p, off)
}

func (c *sizeCounter) ReadSlices(ctx context.Context, vecs [][]byte, off int64, n int) ([][]byte, int, error) {
	defer c.count(off, n, time.Now())
	return c.Reader.ReadSlices(ctx, vecs, off, n)
}
