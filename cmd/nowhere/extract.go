package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type extractOptions struct {
	parallel int
	progress string
	sources  sourceOptions
	trust    trustOptions
}

func newExtractCommand() *cobra.Command {
	var o extractOptions
	cmd := &cobra.Command{
		Use:   "extract SOURCE OUT",
		Short: "Rebuild a whole image file from its chunks",
		Long: `Extract fetches every chunk of the image SOURCE in parallel (each distinct chunk
once) and writes the image to OUT, leaving holes where the image is zero. OUT appears
only when it is complete.`,
		Example: `  nowhere extract http://127.0.0.1:8080/images/debian debian.img --key publisher.pub
  nowhere extract ./store/images/debian/2 old.img
  nowhere extract http://a.example/images/debian debian.img --mirror http://b.example --cache /var/cache/nowhere`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.trust.warnInsecure()
			return runExtract(cmd.Context(), args[0], args[1], o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.parallel, "parallel", defaultExtractParallel, fmt.Sprintf("chunks fetched at once (0: the default, %d)", defaultExtractParallel))
	durationVar(f, &o.sources.timeout, "timeout", time.Minute, "give up on a chunk after retrying every mirror this long")
	o.sources.addFlags(f, true)
	f.StringVar(&o.progress, "progress", "auto", "progress bar: auto, always or never")
	o.trust.addFlags(f)
	return cmd
}

// defaultExtractParallel is extract's --parallel 0: enough requests at once to fill a
// fast link to a plain web server.
const defaultExtractParallel = 16

func runExtract(ctx context.Context, src, out string, o extractOptions) error {
	// --parallel means one thing on every verb: at most this many at once, 0 the verb's
	// default.
	if o.parallel < 0 {
		return fmt.Errorf("--parallel takes a number >= 0 (0: the default, %d)", defaultExtractParallel)
	}
	if o.parallel == 0 {
		o.parallel = defaultExtractParallel
	}
	// SIGINT and SIGTERM end ctx (the root context) instead of killing the process, so
	// the fetches stop and the deferred cleanup below removes the partial file.
	if st, err := os.Stat(out); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("extract: %s exists and is not a regular file", out)
	}
	img, err := openImageSource(ctx, src, &o.sources, &o.trust)
	defer o.sources.close()
	if err == nil {
		err = o.sources.openSeeds(ctx, img.index)
	}
	if err != nil {
		return err
	}
	fetcher := o.sources.fetcher()
	ix := img.index
	// Each distinct chunk is fetched once and written wherever the image repeats it.
	where := make(map[chunk.ID][]int)
	var order []chunk.ID
	for i, e := range ix.Entries {
		if e.Zero {
			continue
		}
		if _, ok := where[e.ID]; !ok {
			order = append(order, e.ID)
		}
		where[e.ID] = append(where[e.ID], i)
	}

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".partial-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Truncate(ix.Size); err != nil { // zero runs stay holes
		return fmt.Errorf("extract: %s: %w", out, err)
	}

	start := time.Now()
	bar := newProgress(o.progress, ix.Size-ix.Stats().ZeroBytes, "extracting "+ix.Name)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.parallel)
	for _, id := range order {
		idx := where[id]
		e := ix.Entries[idx[0]]
		g.Go(func() error {
			got, err := fetcher.Fetch(gctx, chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored})
			if err != nil {
				return err
			}
			for _, i := range idx {
				if _, err := f.WriteAt(got.Plain, ix.Entries[i].Off); err != nil {
					return fmt.Errorf("writing %s: %w", out, err)
				}
				bar.Add(int64(len(got.Plain)))
			}
			return nil
		})
	}
	err = g.Wait()
	bar.Finish()
	if err != nil && ctx.Err() != nil {
		return exitError{130, fmt.Errorf("extract %s: interrupted; %s not written", src, out)}
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", src, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("extract: %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("extract: %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	ok = true
	el := time.Since(start)
	fmt.Printf("extracted %s version %d to %s: %s in %s (%s), %s\n", ix.Name, ix.Version, out,
		units.Bytes(ix.Size), el.Round(time.Millisecond), units.Rate(ix.Size, el), units.Count(len(order), "chunk"))
	if o.sources.seeds != nil {
		st := o.sources.seeds.Stats()
		fmt.Printf("  from seeds: %s (%s); from the store: %s\n", units.Count(st.Hits, "chunk"), units.Bytes(st.HitBytes), units.Count(st.Misses, "chunk"))
	}
	return nil
}
