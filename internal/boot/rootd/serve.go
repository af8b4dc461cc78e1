package rootd

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/profile"
	"github.com/nowhere-boot/nowhere/internal/source"
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
	m := serveMetrics(spec, log)
	img, rd, err := open(spec, m.store, log)
	if err != nil {
		fail(err)
	}
	m.addReader(img.reader)
	rd.Metrics = m.url()
	if err := os.MkdirAll(spec.Mountpoint, 0o755); err != nil {
		fail(err)
	}
	img.start(spec, log)
	srv, err := fusefs.Mount(spec.Mountpoint, []fusefs.File{{Name: filepath.Base(rd.File), Content: img.content, ModTime: img.ix.Created}}, fusefs.Options{
		FsName: spec.Image, Strict: true, Log: log.Printf,
	})
	if err != nil {
		fail(err)
	}
	msg, _ := json.Marshal(rd)
	fmt.Fprintf(ready, "ok %s\n", msg)
	ready.Close()
	log.Printf("serving %s version %d (%s) from %s as %s", rd.Name, rd.Version, units.Bytes(rd.Size), rd.Store, rd.File)
	go reportOnSignal(img, log)
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

// served is the image as the daemon serves it: the reader, the boot profile's prefetcher
// (nil without one), and the recorder that notes each chunk's first read.
type served struct {
	ix       *index.Index
	reader   *image.Reader
	prefetch *profile.Prefetcher
	rec      *profile.Recorder
	content  *profile.Recording
}

// The image's content as the daemon composes it (a profile recording over the image
// reader) keeps the zero-copy (writev) read path.
var (
	_ fusefs.Slicer = (*profile.Recording)(nil)
	_ fusefs.Slicer = (*image.Reader)(nil)
)

// open gathers the sources, loads the index (waiting until a mirror serves one the
// verifier accepts) and returns the image reader.
func open(spec Spec, m store.Observer, log *bootlog.Log) (*served, Ready, error) {
	loc, err := image.ParseLocation(spec.Image)
	if err != nil {
		return nil, Ready{}, err
	}
	loc.Arch = runtime.GOARCH // this machine's own version of a multi-architecture image
	v, err := newVerifier(spec, log)
	if err != nil {
		return nil, Ready{}, err
	}
	src, err := openSources(loc.Store, spec, m, log)
	if err != nil {
		return nil, Ready{}, err
	}
	lan := joinLAN(spec, src, loc, log)
	indexFrom := src.store
	if lan != nil {
		indexFrom = lan.IndexStore(src.store)
	}
	ix, files := loadIndex(indexFrom, loc, v, log)
	if err := ix.CheckArch(runtime.GOARCH); err != nil {
		// Booting another machine's root cannot work: say so in one line, not a kernel panic.
		return nil, Ready{}, err
	}
	from := src.servedBy()
	src.keep(files, log)
	src.learn(log)
	chunks := source.Sources{Set: src.set.MirrorSet, Cache: src.cache}
	if lan != nil {
		lan.SetIndex(ix)
		chunks.Peers = lan
	}
	// The same read-ahead policy as mount's, sized by what the mirror set measures.
	stack := source.Build(ix, chunks.Chunks(), source.Read{
		Parallel: spec.Parallel, Prefetch: spec.Prefetch,
		Reader: image.Options{CacheBytes: spec.MemCache, ReadAhead: spec.ReadAhead, Link: image.LinkOf(src.set.MirrorSet)},
	})
	img := &served{ix: ix, rec: stack.Recorder, prefetch: stack.Prefetcher, reader: stack.Reader, content: stack.Content}
	rd := Ready{
		Name: ix.Name, Version: ix.Version, Size: ix.Size, Store: from,
		File: filepath.Join(spec.Mountpoint, ix.Name+".img"),
	}
	return img, rd, nil
}

// start begins prefetching the boot profile (logging when it is done) and, with
// nowhere.profile=record, printing the chunks read.
func (img *served) start(spec Spec, log *bootlog.Log) {
	if p := img.prefetch; p != nil {
		p.Start()
		log.Printf("prefetching the boot profile: %d chunks, %d at a time", len(img.ix.Profile.Entries), spec.Prefetch)
		go func() {
			<-p.Done()
			s := p.Stats()
			log.Printf("prefetched %d chunks (%s) in %.2f s; reads so far: %d prefetched, %d waited for a prefetch, %d early, %d outside the profile",
				s.Done, units.Bytes(s.Bytes), s.Elapsed.Seconds(), s.Hits, s.Joined, s.Early, s.Outside)
		}()
	} else if n := len(img.ix.Profile.Entries); n > 0 {
		log.Printf("the index has a boot profile of %d chunks: not prefetched (nowhere.prefetch=0)", n)
	}
	if spec.RecordProfile {
		go printProfile(img, log, recordFor)
	}
}

// recordFor bounds a recording: a boot is long done by then.
const recordFor = 10 * time.Minute

// printProfile prints the chunks read, in the order of their first read, as console lines
// (profile.ConsoleLines), a few at a time, until d has passed.
func printProfile(img *served, log *bootlog.Log, d time.Duration) {
	log.Printf("recording the boot profile on the console for %s (nowhere.profile=record)", d)
	end := time.After(d)
	printed := 0
	for {
		entries, more := img.rec.Since(printed)
		for _, l := range profile.ConsoleLines(img.ix.Name, img.ix.Version, printed, entries) {
			log.Printf("%s", l)
		}
		printed += len(entries)
		select {
		case <-more:
			time.Sleep(250 * time.Millisecond) // gather a line's worth
		case <-end:
			img.rec.Stop()
			entries, _ := img.rec.Since(printed)
			for _, l := range profile.ConsoleLines(img.ix.Name, img.ix.Version, printed, entries) {
				log.Printf("%s", l)
			}
			log.Printf("profile recording ended after %s: %d chunks", d, printed+len(entries))
			return
		}
	}
}

// reportOnSignal prints the reader's counters on SIGUSR1 (kill -USR1 $(pgrep -x
// nowhere-root)).
func reportOnSignal(img *served, log *bootlog.Log) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	for range ch {
		log.Printf("%s", Stats(img.reader.Snapshot()))
		if p := img.prefetch; p != nil {
			s := p.Stats()
			c := profile.Measure(profile.FromIndex(img.ix), img.rec.Trace())
			log.Printf("profile chunks=%d prefetched=%d prefetched_bytes=%d hits=%d joined=%d early=%d outside=%d coverage=%.3f",
				s.Queued, s.Done, s.Bytes, s.Hits, s.Joined, s.Early, s.Outside, c.Fraction())
		}
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
