package rootd

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/image"
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

// open gathers the sources, loads the index (waiting until a mirror serves one the
// verifier accepts) and returns the image reader.
func open(spec Spec, log *bootlog.Log) (*image.Reader, Ready, error) {
	loc, err := image.ParseLocation(spec.Image)
	if err != nil {
		return nil, Ready{}, err
	}
	v, err := newVerifier(spec, log)
	if err != nil {
		return nil, Ready{}, err
	}
	src, err := openSources(loc.Store, spec, log)
	if err != nil {
		return nil, Ready{}, err
	}
	lan := joinLAN(spec, src, loc, log)
	indexFrom, fetch := src.store, src.fetch
	if lan != nil {
		indexFrom = lan.IndexStore(src.store)
	}
	ix := loadIndex(indexFrom, loc, v, log)
	from := src.servedBy()
	src.learn(log)
	if lan != nil {
		lan.SetIndex(ix)
		fetch = lan
	}
	r := image.NewReader(ix, fetch, image.Options{CacheBytes: spec.MemCache, ReadAhead: spec.ReadAhead})
	rd := Ready{
		Name: ix.Name, Version: ix.Version, Size: ix.Size, Store: from,
		File: filepath.Join(spec.Mountpoint, ix.Name+".img"),
	}
	return r, rd, nil
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
