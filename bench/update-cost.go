//go:build ignore

// update-cost measures what an update costs a client that has v1 of an image and wants
// v2, for each chunking: the compressed bytes and the number of chunks (requests) of v2
// that v1 lacks, next to the floor (the files that changed between the two trees, through
// zstd). It also reports the index size, the total store size and the pack throughput of
// each chunking, measured in the same run.
//
//	go run bench/update-cost.go -tree1 T1 -tree2 T2 -fs ext4 -img1 I1 -img2 I2 [-fs ...]
//
// bench/update-cost.sh prepares the trees and images and runs it for all formats.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/fschunk"
	"github.com/nowhere-boot/nowhere/internal/fstype"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
)

type imagePair struct{ label, v1, v2 string }

type pairs []imagePair

func (p *pairs) String() string { return fmt.Sprint(*p) }
func (p *pairs) Set(s string) error {
	f := strings.Split(s, ",")
	if len(f) != 3 {
		return fmt.Errorf("want LABEL,V1IMAGE,V2IMAGE")
	}
	*p = append(*p, imagePair{f[0], f[1], f[2]})
	return nil
}

func main() {
	var imgs pairs
	tree1 := flag.String("tree1", "", "v1 tree (for the floor)")
	tree2 := flag.String("tree2", "", "v2 tree (for the floor)")
	work := flag.String("work", os.TempDir(), "directory for the temporary stores (on disk)")
	mem := flag.String("mem", "/dev/shm", "a tmpfs for timing packs without disk contention (\"\" to skip)")
	rounds := flag.Int("rounds", 3, "timed packs per chunking, taking turns (the fastest counts)")
	flag.Var(&imgs, "image", "LABEL,V1IMAGE,V2IMAGE (repeatable)")
	flag.Parse()
	if st, err := os.Stat(*mem); *mem != "" && (err != nil || !st.IsDir()) {
		*mem = ""
	}
	if err := run(*tree1, *tree2, *work, *mem, *rounds, imgs); err != nil {
		fmt.Fprintln(os.Stderr, "update-cost:", err)
		os.Exit(1)
	}
}

// kept are the timed stores on disk, deleted when run ends.
var kept []string

func run(tree1, tree2, work, mem string, rounds int, imgs pairs) error {
	defer func() {
		for _, d := range kept {
			os.RemoveAll(d)
		}
	}()
	floor, files, raw, err := floorBytes(tree1, tree2)
	if err != nil {
		return err
	}
	fmt.Printf("floor: %d changed or added files, %s raw, %s through zstd (level 3)\n\n", files, mib(raw), mib(floor))
	chunkings := []string{"cdc:16K:64K:256K", "fixed:64K", "auto"} // cdc first: the baseline
	fmt.Printf("| image | chunking | v2 needs given v1 | requests | x floor | v2 chunks | index v2 | store (v1+v2) | pack v2, store on disk | vs cdc | pack v2, store in tmpfs | vs cdc |\n")
	fmt.Printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, im := range imgs {
		results := make([]*result, len(chunkings))
		for i, ch := range chunkings {
			r, err := measure(im, ch, work)
			if err != nil {
				return fmt.Errorf("%s %s: %w", im.label, ch, err)
			}
			results[i] = r
		}
		// Throughput: pack v2 into an empty store (every chunk hashed, compressed, written),
		// the chunkings taking turns in each round so that load from elsewhere hits them
		// alike; the fastest round of each counts.
		for round := 0; round < rounds; round++ {
			for i, ch := range chunkings {
				for _, w := range []string{work, mem} {
					if w == "" {
						continue
					}
					d, err := timePack(im.v2, ch, w, w == work)
					if err != nil {
						return fmt.Errorf("%s %s: %w", im.label, ch, err)
					}
					t := &results[i].packTime
					if w == mem {
						t = &results[i].memTime
					}
					if *t == 0 || d < *t {
						*t = d
					}
				}
			}
		}
		for i, ch := range chunkings {
			r := results[i]
			ratio := fmt.Sprintf("%.2f", float64(results[0].packTime)/float64(r.packTime))
			memCol, memRatio := "-", "-"
			if r.memTime > 0 {
				memCol = fmt.Sprintf("%s, %s", r.memTime.Round(time.Millisecond), rate(r.size, r.memTime))
				memRatio = fmt.Sprintf("%.2f", float64(results[0].memTime)/float64(r.memTime))
			}
			name := ch
			if ch == "auto" {
				name = fmt.Sprintf("auto (%s)", r.params)
			}
			fmt.Printf("| %s | %s | %s | %d | %.2f | %d | %s | %s | %s, %s | %s | %s | %s |\n",
				im.label, name, mib(r.newBytes), r.newChunks, float64(r.newBytes)/float64(floor),
				r.chunks, kib(r.indexBytes), mib(r.storeBytes),
				r.packTime.Round(time.Millisecond), rate(r.size, r.packTime), ratio, memCol, memRatio)
			if r.layoutTime > 0 {
				fmt.Fprintf(os.Stderr, "  %s: metadata pre-pass %s, %d cut points\n", im.label, r.layoutTime.Round(time.Millisecond), r.cuts)
			}
		}
	}
	fmt.Println("\nvs cdc: pack throughput relative to content-defined chunking (higher is faster; goal >= 0.5).")
	return nil
}

type result struct {
	newBytes, storeBytes, size int64
	newChunks, chunks          int
	indexBytes                 int
	packTime, memTime          time.Duration
	layoutTime                 time.Duration
	cuts                       int
	params                     string
}

func measure(im imagePair, chunking, work string) (*result, error) {
	dir, err := os.MkdirTemp(work, "update-cost-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := store.CreateDir(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	r1, err := packImage(im.v1, st, "img", chunking)
	if err != nil {
		return nil, err
	}
	r2, err := packImage(im.v2, st, "img", chunking)
	if err != nil {
		return nil, err
	}
	res := &result{
		newBytes: r2.Stored, newChunks: r2.New, chunks: r2.Chunks,
		indexBytes: len(r2.IndexFile), storeBytes: r1.Stored + r2.Stored,
		size: r2.Read, params: r2.Index.Chunking.String(),
	}
	if chunking == "auto" {
		f, err := os.Open(im.v2)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		head := make([]byte, fstype.HeaderSize)
		io.ReadFull(f, head)
		st, _ := f.Stat()
		t0 := time.Now()
		l, err := fschunk.Read(fstype.Detect(head), f, st.Size())
		if err != nil {
			return nil, err
		}
		res.layoutTime, res.cuts = time.Since(t0), len(l.Cuts)
	}
	return res, nil
}

// timePack packs the image at path into a new empty store and returns how long it took.
//
// The store is deleted only when the benchmark ends (keep): deleting thousands of chunk
// files just before the next timed pack makes ext4's inode allocator step over the
// recently freed inodes and slows that pack (docs/benchmarks.md, "All-zero regions"),
// more so for the chunkings that make more chunks. In a tmpfs this does not matter.
func timePack(path, chunking, work string, keep bool) (time.Duration, error) {
	fresh, err := os.MkdirTemp(work, "update-cost-fresh-")
	if err != nil {
		return 0, err
	}
	if keep {
		kept = append(kept, fresh)
	} else {
		defer os.RemoveAll(fresh)
	}
	st, err := store.CreateDir(fresh)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	r, err := packImage(path, st, "fresh", chunking)
	if err != nil {
		return 0, err
	}
	return r.Elapsed, nil
}

func packImage(path string, w *store.Dir, name, chunking string) (*pack.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	spec := chunking
	if chunking == "auto" {
		spec = chunk.DefaultSpec
	}
	sp, err := chunk.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return pack.Run(context.Background(), f, w, pack.Options{
		Name: name, Spec: sp, FSAware: chunking == "auto",
		Warn: func(msg string) { fmt.Fprintln(os.Stderr, "warning:", msg) },
	})
}

// floorBytes compresses, as one zstd stream in path order, every regular file of tree2
// that tree1 lacks or holds with other content.
func floorBytes(tree1, tree2 string) (compressed int64, files int, raw int64, err error) {
	var changed []string
	err = filepath.WalkDir(tree2, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(tree2, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if a, err := os.ReadFile(filepath.Join(tree1, rel)); err == nil && bytes.Equal(a, b) {
			if st, err := os.Lstat(filepath.Join(tree1, rel)); err == nil && st.Mode().IsRegular() {
				return nil
			}
		}
		changed = append(changed, rel)
		raw += int64(len(b))
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	sort.Strings(changed)
	var counter countWriter
	zw, err := zstd.NewWriter(&counter, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, rel := range changed {
		b, err := os.ReadFile(filepath.Join(tree2, rel))
		if err != nil {
			return 0, 0, 0, err
		}
		zw.Write(b)
	}
	if err := zw.Close(); err != nil {
		return 0, 0, 0, err
	}
	return counter.n, len(changed), raw, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
func kib(n int) string   { return fmt.Sprintf("%.0f KiB", float64(n)/1024) }
func rate(n int64, d time.Duration) string {
	return fmt.Sprintf("%.0f MiB/s", float64(n)/(1<<20)/d.Seconds())
}
