package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// fetchAll fetches and verifies every chunk of an image with P parallel requests, in
// index order: the fetch throughput the reader's read-ahead can at best reach.
func fetchAll(args []string) error {
	fl := flag.NewFlagSet("fetchall", flag.ContinueOnError)
	par := fl.Int("p", 32, "parallel fetches")
	verify := fl.Bool("verify", true, "decode and verify (false: only download)")
	cpuprofile := fl.String("cpuprofile", "", "write a CPU profile here")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return errors.New("fetchall [-p N] SOURCE")
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
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	refs := make(chan chunk.Ref)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var raw, plain int64
	start := time.Now()
	for i := 0; i < *par; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ref := range refs {
				var r, p int
				var err error
				if *verify {
					var f store.Fetched
					f, err = store.Verify(s).Fetch(ctx, ref)
					r, p = len(f.Raw), len(f.Plain)
				} else {
					var b []byte
					b, err = s.Chunk(ctx, ref)
					r = len(b)
				}
				mu.Lock()
				raw += int64(r)
				plain += int64(p)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	n := 0
	for _, e := range ix.Entries {
		if !e.Zero {
			refs <- chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored}
			n++
		}
	}
	close(refs)
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("%d chunks, %d MiB stored, %d MiB plain in %.3f s: %.0f chunks/s, %.0f MB/s plain\n",
		n, raw>>20, plain>>20, el.Seconds(), float64(n)/el.Seconds(), float64(plain)/el.Seconds()/1e6)
	return firstErr
}
