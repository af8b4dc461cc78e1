package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type mountOptions struct {
	cache     string
	timeout   time.Duration
	memCache  string
	readAhead string
	daemon    bool
	logFile   string
	debug     bool
	trust     trustOptions
}

func newMountCommand() *cobra.Command {
	var o mountOptions
	cmd := &cobra.Command{
		Use:   "mount SOURCE MOUNTPOINT",
		Short: "Mount an image as a read-only file, fetching chunks on demand",
		Long: `Mount exposes the image SOURCE (STORE/images/NAME[/VERSION], STORE being an http(s)
URL or a directory) as MOUNTPOINT/NAME.img. A read fetches only the chunks it needs,
verifies each against its name, and reads ahead on sequential access. The file can be
loop-mounted like the original image. The index must be signed by a trusted key (--key)
and pass the name, expiry and rollback checks (docs/security.md). Runs in the foreground
until interrupted (then unmounts) unless --daemon is given.`,
		Example: `  nowhere mount http://127.0.0.1:8080/images/debian /mnt/nowhere --key publisher.pub
  nowhere mount ./store/images/debian/3 /mnt/nowhere --cache /var/cache/nowhere --daemon
  mount -o loop,ro /mnt/nowhere/debian.img /mnt/root`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.trust.warnInsecure()
			if o.daemon {
				return daemonize(o.logFile)
			}
			return runMount(cmd.Context(), args[0], args[1], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cache, "cache", "", "keep fetched chunks in this directory (a local store)")
	f.DurationVar(&o.timeout, "timeout", time.Minute, "a read that cannot be served fails with EIO after this long (0: retry forever)")
	f.StringVar(&o.memCache, "mem-cache", "128M", "memory for verified chunks")
	f.StringVar(&o.readAhead, "readahead", "8M", "most bytes fetched ahead of a sequential reader (0 disables)")
	f.BoolVar(&o.daemon, "daemon", false, "run in the background once mounted")
	f.StringVar(&o.logFile, "log", "", "with --daemon: append messages to this file")
	f.BoolVar(&o.debug, "debug", false, "log every FUSE request")
	o.trust.addFlags(f)
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
	img, err := openImageSource(ctx, src, &o.trust, o.cache)
	if err != nil {
		return notifyFailure(err)
	}
	f, err := img.fetcher(o.timeout, o.cache)
	if err != nil {
		return notifyFailure(err)
	}
	r := image.NewReader(img.index, f, image.Options{CacheBytes: mem, ReadAhead: ra})
	name := img.index.Name + ".img"
	srv, err := fusefs.Mount(mnt, []fusefs.File{{Name: name, Content: r}}, fusefs.Options{
		FsName: img.loc.String(), Debug: o.debug, Log: logf,
	})
	if err != nil {
		return notifyFailure(err)
	}
	fmt.Printf("mounted %s version %d (%s) at %s/%s\n", img.index.Name, img.index.Version, units.Bytes(img.index.Size), mnt, name)
	notifyReady()

	sigs := interrupted()
	served := make(chan struct{})
	go func() { srv.Wait(); close(served) }()
	for {
		select {
		case <-served: // unmounted from outside (nowhere umount, umount)
			return nil
		case sig := <-sigs:
			if err := srv.Unmount(); err != nil {
				logf("%s: cannot unmount %s: %v (still serving; unmount what uses it first)", sig, mnt, err)
				continue
			}
			<-served
			return nil
		}
	}
}
