package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/replica"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type syncOptions struct {
	images   []string
	parallel int
	progress string
	trust    trustOptions
	sources  sourceOptions
}

func newSyncCommand() *cobra.Command {
	o := syncOptions{sources: sourceOptions{quietProbe: true}}
	cmd := &cobra.Command{
		Use:   "sync SRC DST",
		Short: "Copy a store's images to another store: only missing chunks, resumable",
		Long: `Sync copies images (all, or those named by --image) from the store SRC (a directory,
an http(s) URL or s3://BUCKET/PREFIX) to DST (a directory or s3://BUCKET/PREFIX): every
version's chunks that DST lacks, in parallel, each verified against its name, then the
index files, versions files and latest pointers, so that DST never advertises a version
whose chunks it does not hold. Interrupted, it leaves chunks but no new index; run it
again and it copies only what is still missing.

Over HTTP the images and versions are read from the catalogue pack publishes. With --key
the pointers, versions files and indexes must be signed by a trusted key.

With --mirror URL (more sources of SRC; over HTTP also the mirrors SRC lists) files and
chunks are read through the mirror set: a source that fails or serves a corrupt chunk is
skipped for the next, and a chunk no source serves is retried for --timeout
(docs/mirrors.md).`,
		Example: `  nowhere sync http://origin.example/nowhere /srv/mirror
  nowhere sync http://mirror-a.example/nowhere /srv/mirror --mirror http://mirror-b.example/nowhere
  nowhere sync ./store s3://bucket/nowhere --image debian --s3-endpoint http://127.0.0.1:9000
  nowhere sync s3://bucket/nowhere ./copy --key publisher.pub`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.trust.warnInsecure()
			defer o.sources.close()
			return runSync(cmd.Context(), args[0], args[1], &o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.images, "image", nil, "copy this image (repeatable; default: all)")
	f.IntVar(&o.parallel, "parallel", defaultSyncParallel, fmt.Sprintf("chunks copied at once (0: the default, %d)", defaultSyncParallel))
	f.StringVar(&o.progress, "progress", "auto", "progress bar: auto, always or never")
	o.sources.addFlags(f, false)
	durationVar(f, &o.sources.timeout, "timeout", time.Minute, "give up on a chunk after retrying every source this long (0: keep waiting)")
	o.trust.addFlags(f)
	return cmd
}

// defaultSyncParallel is sync's --parallel 0.
const defaultSyncParallel = 8

func runSync(ctx context.Context, srcLoc, dstLoc string, o *syncOptions) error {
	// --parallel means one thing on every verb: at most this many at once, 0 the verb's
	// default.
	if o.parallel < 0 {
		return fmt.Errorf("--parallel takes a number >= 0 (0: the default, %d)", defaultSyncParallel)
	}
	if o.parallel == 0 {
		o.parallel = defaultSyncParallel
	}
	v, err := listVerifier(&o.trust)
	if err != nil {
		return err
	}
	httpOpt, err := o.trust.storeOptions()
	if err != nil {
		return err
	}
	src, err := o.sources.openListed(ctx, srcLoc, httpOpt)
	if err != nil {
		return err
	}
	dst, err := openWriteStore(ctx, dstLoc)
	if err != nil {
		return err
	}
	lk, err := lockStore(ctx, dst, dstLoc, false)
	if err != nil {
		return err
	}
	defer lk.unlock()
	ctx = lk.ctx // cancelled, before anything is published, if an S3 lock is lost
	if v == nil {
		logf("note: no --key: copying without checking signatures (clients still check them)")
	}
	start := time.Now()
	var bar *progress
	opt := replica.Options{
		Images: o.images, Parallel: o.parallel, Log: logf,
		Planned: func(n int, b int64) { bar = newProgress(o.progress, b, fmt.Sprintf("syncing %d chunks", n)) },
		Copied:  func(b int64) { bar.Add(b) },
	}
	if v != nil {
		opt.Verifier = v
	}
	res, err := replica.Sync(ctx, src, dst, opt)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		err = lk.explain(err)
		if res != nil && res.Copied > 0 {
			return fmt.Errorf("sync: %w (after copying %d chunks; run it again to resume)", err, res.Copied)
		}
		return fmt.Errorf("sync: %w", err)
	}
	fmt.Printf("synced %s (%s) from %s to %s: %s, %d already there, %d copied (%s), %s written, in %s\n",
		units.Count(res.Images, "image"), units.Count(res.Versions, "version"), src, dst, units.Count(res.Chunks, "chunk"), res.Present, res.Copied, units.Bytes(res.CopiedBytes), units.Count(res.Files, "file"),
		time.Since(start).Round(time.Millisecond))
	return nil
}
