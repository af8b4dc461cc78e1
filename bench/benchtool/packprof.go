package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// packProf packs an image into fresh temporary stores (under $TMPDIR) with an optional
// CPU profile: bench/run.sh times the real `nowhere pack`; this finds out where the time
// goes (go tool pprof -top benchtool cpu.out).
func packProf(args []string) error {
	fl := flag.NewFlagSet("packprof", flag.ContinueOnError)
	cpuprofile := fl.String("cpuprofile", "", "write a CPU profile here")
	chunking := fl.String("chunking", chunk.DefaultSpec, "chunking spec")
	workers := fl.Int("workers", 0, "pack workers (0: number of CPUs)")
	runs := fl.Int("runs", 1, "pack this many times, each into a fresh store")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return fmt.Errorf("packprof [flags] IMAGE")
	}
	image := fl.Arg(0)
	spec, err := chunk.ParseSpec(*chunking)
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
	for i := 0; i < *runs; i++ {
		if err := packOnce(image, spec, *workers); err != nil {
			return err
		}
	}
	return nil
}

func packOnce(image string, spec chunk.Spec, workers int) error {
	dir, err := os.MkdirTemp("", "packprof-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w, err := store.CreateDir(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	in, err := os.Open(image)
	if err != nil {
		return err
	}
	defer in.Close()
	start := time.Now()
	res, err := pack.Run(context.Background(), in, w, pack.Options{Name: "prof", Spec: spec, Workers: workers})
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Printf("%s: %.3f s, %.0f MiB/s, %d chunks, %d zero runs (%d MiB), %d MiB stored\n", image,
		el.Seconds(), float64(res.Read)/(1<<20)/el.Seconds(), res.Chunks, res.Zero, res.ZeroBytes>>20, res.Stored>>20)
	return nil
}
