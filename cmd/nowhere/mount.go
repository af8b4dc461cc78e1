package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/metrics"
	"github.com/nowhere-boot/nowhere/internal/profile"
	"github.com/nowhere-boot/nowhere/internal/source"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type mountOptions struct {
	sources   sourceOptions
	metrics   string
	memCache  string
	readAhead string
	prefetch  int
	parallel  int
	daemon    bool
	logFile   string
	debug     bool
	trust     trustOptions
	share     shareOptions
}

func newMountCommand() *cobra.Command {
	var o mountOptions
	cmd := &cobra.Command{
		Use:   "mount SOURCE MOUNTPOINT",
		Short: "Mount an image as a read-only file, fetching chunks on demand",
		Long: `Mount exposes the image SOURCE (STORE/images/NAME[/VERSION], STORE being an http(s)
URL or a directory) as MOUNTPOINT/NAME.img. A read fetches only the chunks it needs,
verifies each against its name, and reads ahead on sequential access. When the index
carries a boot profile, its chunks are fetched in the background from the start, reads
always first (--prefetch). MOUNTPOINT/.profile lists the chunks read so far, in the order
of their first read ('nowhere profile record'). The file can be
loop-mounted like the original image. The index must be signed by a trusted key (--key)
and pass the name, expiry and rollback checks (docs/security.md). Runs in the foreground
until interrupted (then unmounts) unless --daemon is given. On SIGINT or SIGTERM, or
an unmount from outside, reads still waiting for a mirror get EIO and the process exits
within 10 s, whatever --timeout says (a mount the kernel keeps busy is detached lazily).`,
		Example: `  nowhere mount http://127.0.0.1:8080/images/debian /mnt/nowhere --key publisher.pub
  nowhere mount ./store/images/debian/3 /mnt/nowhere --cache /var/cache/nowhere --daemon
  nowhere mount http://a.example/images/debian /mnt/nowhere --mirror http://b.example --metrics 127.0.0.1:9100
  nowhere mount http://a.example/images/debian /mnt/nowhere --cache /var/cache/nowhere --share 192.168.1.20:7780
  mount -o loop,ro /mnt/nowhere/debian.img /mnt/root`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.trust.warnInsecure()
			if o.daemon {
				return daemonize(o.logFile)
			}
			// Every failure, early or late, reaches a --daemon parent waiting for it.
			if err := runMount(cmd.Context(), args[0], args[1], o); err != nil {
				return notifyFailure(err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	o.sources.addFlags(f, true)
	durationVar(f, &o.sources.timeout, "timeout", time.Minute, "a read no mirror can serve fails with EIO after this long (0: wait forever, logging; an unmount or a signal still ends it)")
	f.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100)")
	sizeVar(f, &o.memCache, "mem-cache", "128M", "memory for verified chunks")
	sizeVar(f, &o.readAhead, "readahead", "8M", "most bytes fetched ahead of a sustained sequential reader, sized by the mirrors' bandwidth x latency (0 disables)")
	f.IntVar(&o.prefetch, "prefetch", 16, "fetch the chunks of the image's boot profile in the background, this many at once (0: do not)")
	f.IntVar(&o.parallel, "parallel", 0, "fetch at most this many chunks at once, prefetches included (0: the default, no limit; 1: one request at a time, as in 2005)")
	f.BoolVar(&o.daemon, "daemon", false, "run in the background once mounted")
	f.StringVar(&o.logFile, "log", "", "with --daemon: append messages to this file")
	f.BoolVar(&o.debug, "debug", false, "log every FUSE request")
	o.trust.addFlags(f)
	o.share.addFlags(f)
	return cmd
}

func runMount(ctx context.Context, src, mnt string, o mountOptions) error {
	mem, err := units.ParseBytes(o.memCache)
	if err != nil {
		return fmt.Errorf("--mem-cache: %w", err)
	}
	ra, err := units.ParseBytes(o.readAhead)
	if err != nil {
		return fmt.Errorf("--readahead: %w", err)
	}
	if ra == 0 {
		ra = -1
	}
	if o.prefetch < 0 || o.parallel < 0 {
		return fmt.Errorf("--prefetch and --parallel take a number >= 0")
	}
	reg := prometheus.NewRegistry()
	o.sources.metrics = metrics.NewStore(reg)
	o.share.hook(&o.sources)
	img, err := openImageSource(ctx, src, &o.sources, &o.trust)
	defer o.sources.close()
	defer o.share.close()
	if err == nil {
		// Reading another architecture's image (for inspection) is legitimate: only the
		// boot daemon refuses it.
		if aerr := img.index.CheckArch(runtime.GOARCH); aerr != nil {
			logf("warning: %v (mounting it anyway: only booting it is refused)", aerr)
		}
		err = o.sources.openSeeds(ctx, img.index)
	}
	if err != nil {
		return notifyFailure(err)
	}
	// With --timeout D a read fails after D; the kernel's retries of the same page then
	// fail at once instead of waiting D each.
	opt := image.Options{CacheBytes: mem, ReadAhead: ra, FailMemory: min(o.sources.timeout, 10*time.Second)}
	if o.sources.set != nil {
		opt.Link = image.LinkOf(o.sources.set) // read-ahead sized by what the mirrors measure
	}
	stack := source.Build(img.index, o.share.fetcher(img, &o.sources), source.Read{Parallel: o.parallel, Prefetch: o.prefetch, Reader: opt})
	r, pf, rec := stack.Reader, stack.Prefetcher, stack.Recorder
	if pf != nil {
		pf.Start() // before the mount is up: the first reads find their chunks on the way
		defer pf.Close()
	}
	metrics.RegisterReader(reg, r)
	if o.metrics != "" {
		ms, err := metrics.Serve(o.metrics, reg)
		if err != nil {
			return notifyFailure(fmt.Errorf("--metrics: %w", err))
		}
		defer ms.Close()
		logf("metrics at %s", ms.URL())
	}
	status := &mountStatus{img: img, reader: r, sources: &o.sources, started: time.Now(), prefetch: pf, rec: rec}
	name := img.index.Name + ".img"
	files := []fusefs.File{
		{Name: name, Content: stack.Content, ModTime: img.index.Created},
		{Name: statusName, Content: statusFile{status.report}, Live: true, ModTime: status.started},
		{Name: statusJSONName, Content: statusFile{status.reportJSON}, Live: true, ModTime: status.started},
		{Name: profileName, Content: statusFile{func() []byte { return rec.Trace().Encode() }}, Live: true, ModTime: status.started},
	}
	// The root context catches SIGINT and SIGTERM from the start, so one that arrives
	// while the mount comes up still ends it cleanly; the signals after the first come
	// on force, so that a second one cuts the unmount short (endMount).
	force := forceSignals(ctx)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	// Every read's context derives from this one, which the first signal ends: reads
	// still waiting for a mirror (forever, with --timeout 0) then get EIO instead of
	// keeping the mount busy and the process alive.
	readsCtx, cutOffReads := context.WithCancel(ctx)
	defer cutOffReads()
	srv, err := fusefs.Mount(mnt, files, fusefs.Options{
		FsName: img.loc.String(), Debug: o.debug, Log: logf, Context: readsCtx,
	})
	if err != nil {
		return notifyFailure(err)
	}
	fmt.Printf("mounted %s version %d (%s) at %s/%s\n", img.index.Name, img.index.Version, units.Bytes(img.index.Size), mnt, name)
	notifyReady()

	for {
		select {
		case <-usr1:
			logf("%s", status.line())
		case <-srv.Gone(): // unmounted from outside (nowhere umount, umount, fusermount -u)
			return endMount(srv, mnt, force)
		case <-ctx.Done():
			cutOffReads()
			return endMount(srv, mnt, force)
		}
	}
}

// The image file's content as mount composes it keeps the zero-copy (writev) read path.
var _ fusefs.Slicer = (*profile.Recording)(nil)
