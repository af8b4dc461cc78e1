package rootd

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// Main is the daemon: it reads its Spec from standard input, serves the image and never
// returns while the mount is up. Failures before it serves go to the ready pipe (fd 3)
// and the console; after that, it only logs.
func Main() {
	log := bootlog.Console.Named(Comm)
	ready := os.NewFile(3, "ready")
	fail := func(err error) {
		log.Printf("%v", err)
		fmt.Fprintf(ready, "error: %v\n", err)
		os.Exit(1)
	}
	becomeRootDaemon(log)
	spec, err := readSpec(os.Stdin)
	if err != nil {
		fail(err)
	}
	log.SetDebug(spec.Debug)
	r, rd, err := open(spec, log)
	if err != nil {
		fail(err)
	}
	if err := os.MkdirAll(spec.Mountpoint, 0o755); err != nil {
		fail(err)
	}
	srv, err := fusefs.Mount(spec.Mountpoint, []fusefs.File{{Name: filepath.Base(rd.File), Content: r}}, fusefs.Options{
		FsName: spec.Image, Strict: true, Log: log.Printf,
	})
	if err != nil {
		fail(err)
	}
	msg, _ := json.Marshal(rd)
	fmt.Fprintf(ready, "ok %s\n", msg)
	ready.Close()
	log.Printf("serving %s version %d (%s) from %s as %s", rd.Name, rd.Version, units.Bytes(rd.Size), rd.Store, rd.File)
	go reportOnSignal(r, log)
	srv.Wait()
	log.Printf("FUSE mount %s ended", spec.Mountpoint)
}

// becomeRootDaemon names the process, exempts it from the OOM killer (the whole system
// hangs on it), and makes it deaf to the signals a shutdown or a terminal sends: only
// SIGKILL ends it, and systemd does not send that to '@' processes.
func becomeRootDaemon(log *bootlog.Log) {
	// prctl(PR_SET_NAME) would rename only the calling thread; this renames the process.
	if err := os.WriteFile("/proc/self/comm", []byte(Comm), 0); err != nil {
		log.Printf("cannot set the process name: %v", err)
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		log.Printf("cannot opt out of the OOM killer: %v", err)
	}
	signal.Ignore(syscall.SIGPIPE)
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		for s := range ch {
			log.Printf("got %v: ignored, this process serves the root filesystem", s)
		}
	}()
	// Load the CA certificates now: the files go away with the initramfs at switch_root.
	_, _ = x509.SystemCertPool()
}

// open finds a mirror that serves the image's index and returns the image reader. It
// tries until one answers, logging every few seconds: a machine that boots before its
// server is up waits for it.
func open(spec Spec, log *bootlog.Log) (*image.Reader, Ready, error) {
	loc, err := image.ParseLocation(spec.Image)
	if err != nil {
		return nil, Ready{}, err
	}
	client := newHTTPClient(spec.DNS)
	var srcs []store.Store
	for _, base := range append([]string{loc.Store}, spec.Mirrors...) {
		s, err := store.NewHTTP(base, client)
		if err != nil {
			return nil, Ready{}, err
		}
		srcs = append(srcs, s)
	}
	var (
		ix    *index.Index
		first int
	)
	policy := store.Policy{Log: log.Printf, LogEvery: 5 * time.Second}
	attempt := 0
	err = policy.Do(context.Background(), "fetch the index of "+loc.String(), func(ctx context.Context) error {
		attempt++
		var errs []error
		defer func() {
			if attempt == 1 && len(errs) == len(srcs) { // the first failure, at once; then every 5 s
				log.Printf("cannot fetch the index of %s: %v; retrying until a mirror answers", loc, joinErrors(errs))
			}
		}()
		for i, s := range srcs {
			actx, cancel := context.WithTimeout(ctx, 20*time.Second)
			got, err := loadOnce(actx, s, loc)
			cancel()
			if err == nil {
				ix, first = got, i
				return nil
			}
			errs = append(errs, err)
			log.Debugf("%s: %v", s, err)
		}
		return joinErrors(errs)
	})
	if err != nil {
		return nil, Ready{}, err
	}
	// Trusted keys (signed indexes) are checked here once the index format carries them.
	srcs = append(srcs[first:], srcs[:first]...)
	var f store.Fetcher = store.Retry(store.Verify(newFailover(srcs, log)),
		store.Policy{Timeout: 0, Log: log.Printf, LogEvery: 5 * time.Second}) // a root never gives up
	if spec.CacheDir != "" {
		d, err := store.CreateDir(spec.CacheDir)
		if err != nil {
			log.Printf("cache %s: %v: going on without it", spec.CacheDir, err)
		} else {
			f = store.Cache(f, d, log.Printf)
		}
	}
	r := image.NewReader(ix, f, image.Options{CacheBytes: spec.MemCache, ReadAhead: spec.ReadAhead})
	rd := Ready{
		Name: ix.Name, Version: ix.Version, Size: ix.Size, Store: srcs[0].String(),
		File: filepath.Join(spec.Mountpoint, ix.Name+".img"),
	}
	return r, rd, nil
}

// loadOnce asks one store for the index, once: the retrying happens around all the
// mirrors, not inside one.
func loadOnce(ctx context.Context, s store.Store, loc image.Location) (*index.Index, error) {
	ix, _, err := image.Load(ctx, s, loc, store.Policy{Timeout: time.Nanosecond})
	if err != nil && strings.Contains(err.Error(), "(gave up after") {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // drop the one-attempt policy's note
		}
	}
	return ix, err
}

// reportOnSignal prints the reader's counters on SIGUSR1 (kill -USR1 $(pgrep -x
// nowhere-root)).
func reportOnSignal(r *image.Reader, log *bootlog.Log) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	for range ch {
		log.Printf("%s", Stats(r.Snapshot()))
	}
}

// Stats formats reader counters as one line of key=value pairs.
func Stats(s image.StatsSnapshot) string {
	kv := func(k string, v int64) string { return k + "=" + strconv.FormatInt(v, 10) }
	return "stats " + kv("reads", s.Reads) + " " + kv("read_bytes", s.ReadBytes) + " " +
		kv("fetches", s.Fetches) + " " + kv("fetched_bytes", s.FetchedBytes) + " " +
		kv("fetched_plain", s.FetchedPlain) + " " + kv("hits", s.Hits) + " " + kv("misses", s.Misses) + " " +
		kv("errors", s.Errors) + " " + kv("waiting", s.Waiting)
}
