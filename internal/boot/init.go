// Package boot is nowhere's /init: the program the kernel runs from the initramfs as
// PID 1. It brings up just enough of a system to reach the image over HTTP, mounts the
// image as the root filesystem with a writable overlay, and hands over to the image's own
// init. Each step is a function of a small package (cmdline, kmod, netup, rootd,
// loopdev, sysmount); this file only sequences them, prints one line per step with its
// time, and retries what can succeed later (network, servers) instead of letting the
// kernel panic.
package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"os"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
	"github.com/nowhere-boot/nowhere/internal/boot/initramfs"
	"github.com/nowhere-boot/nowhere/internal/boot/kmod"
	"github.com/nowhere-boot/nowhere/internal/boot/loopdev"
	"github.com/nowhere-boot/nowhere/internal/boot/netup"
	"github.com/nowhere-boot/nowhere/internal/boot/rootd"
	"github.com/nowhere-boot/nowhere/internal/boot/sysmount"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
	"golang.org/x/sys/unix"
)

// Where things go. The FUSE mount and the cache disk stay in the initramfs root, which the
// new system cannot see; the image and the overlay's writable layer live under /run,
// which moves into the new root with the system.
const (
	fuseDir  = "/.nowhere"
	cacheDir = "/.nowhere-cache"
	lowerDir = "/run/nowhere/lower"
	rwDir    = "/run/nowhere/rw"
	newRoot  = "/newroot"
)

var log = bootlog.Console

// Init runs the boot. It never returns: it ends by executing the image's init, or, when
// something cannot be fixed by waiting, by printing why over and over.
func Init(version string) {
	start := bootlog.Uptime()
	log.Printf("nowhere %s: /init started", version)
	if err := sysmount.MountAll(sysmount.Early); err != nil {
		halt(err)
	}
	log.Printf("mounted /proc /sys /dev /run")

	cfg := readConfig()
	log.SetDebug(cfg.Debug)
	stdlog.SetFlags(0)
	stdlog.SetOutput(io.Discard) // u-root's DHCP client talks through the standard logger
	if cfg.Debug {
		stdlog.SetOutput(log.Named("nowhere/dhcp"))
	}
	log.Printf("image %s, mirrors [%s], ip %s, overlay %s%s", cfg.Image, strings.Join(cfg.Mirrors, " "), cfg.IP, cfg.Overlay, proxyNote(cfg.Proxy))
	keys, err := trustedKeys(cfg, trust.DefaultKeyFile)
	if err != nil {
		halt(err)
	}
	summary, err := trustSummary(cfg, keys)
	if err != nil {
		halt(err)
	}
	log.Printf("%s", summary)

	featuresLoaded := loadModules()
	spec := rootd.Spec{Image: cfg.Image, Mirrors: cfg.Mirrors, Proxy: cfg.Proxy, Insecure: cfg.Insecure,
		Mountpoint: fuseDir, Debug: cfg.Debug, MemCache: memCache(), ReadAhead: readAhead(cfg.ReadAhead),
		Prefetch: prefetch(cfg.Prefetch), Parallel: cfg.Parallel, RecordProfile: cfg.RecordProfile,
		Metrics: cfg.Metrics, StateFile: memStateDir + "/" + trust.StateFileName}
	for _, k := range keys {
		spec.Keys = append(spec.Keys, k.String())
	}
	if cfg.Cache != "" {
		if dir := mountCache(cfg.Cache); dir != "" {
			spec.CacheDir, spec.CacheQuota = dir+"/chunks", cacheQuota(dir)
			spec.StateFile = dir + "/" + trust.StateFileName // remembered across boots
		}
	}
	waitRandom()
	net := bringUpNetwork(cfg.IP)
	for _, d := range net.DNS {
		spec.DNS = append(spec.DNS, d.String())
	}
	shareLAN(&spec, cfg.Share, cfg.Peers, net)

	<-featuresLoaded // FUSE, loop and the filesystems
	var file string
	if cfg.Fetch != "" { // the download-first baseline: no daemon, no store
		file = retry("download the image", func() (string, error) { return fetchImage(cfg.Fetch, spec.DNS, cfg.Proxy) })
	} else {
		d := retry("start the root daemon", func() (*rootd.Process, error) {
			return rootd.Start(mustExecutable(), spec, os.Stderr)
		})
		log.Printf("root daemon pid %d serves %s version %d (%s) from %s%s", d.Pid, d.Ready.Name, d.Ready.Version,
			units.Bytes(d.Ready.Size), d.Ready.Store, metricsNote(d.Ready.Metrics))
		file = d.Ready.File
	}
	if cfg.ToRAM && cfg.Fetch == "" {
		file = retry("copy the image into memory", func() (string, error) { return copyToRAM(file) })
	}
	fstype := retry("mount the image", func() (string, error) { return mountImage(file) })
	retry("set up the overlay", func() (struct{}, error) { return struct{}{}, overlay(cfg.Overlay) })
	log.Printf("root: overlay of %s (%s, read-only) and %s", lowerDir, fstype, overlayKind(cfg.Overlay))

	candidates := sysmount.InitCandidates
	if cfg.Init != "" {
		candidates = []string{cfg.Init}
	}
	init, err := sysmount.FindInit(newRoot, candidates)
	if err != nil {
		halt(err)
	}
	argv := append([]string{init}, os.Args[1:]...)
	if len(os.Args) == 1 {
		argv = append(argv, cfg.InitArgs...)
	}
	log.Printf("switch_root: exec %s (/init took %.2f s)", init, (bootlog.Uptime() - start).Seconds())
	halt(sysmount.SwitchRoot(newRoot, init, argv, os.Environ()))
}

// readConfig reads the baked defaults and the kernel command line. A bad value cannot be
// fixed by waiting: it halts with the reason.
func readConfig() cmdline.Config {
	baked, err := os.ReadFile(initramfs.DefaultsFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		halt(err)
	}
	kernel, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		halt(err)
	}
	cfg, err := cmdline.Parse(
		cmdline.Layer{Name: "initramfs defaults " + initramfs.DefaultsFile, Text: string(baked)},
		cmdline.Layer{Name: "kernel command line", Text: string(kernel)})
	if err != nil {
		halt(err)
	}
	for _, w := range cfg.Warnings {
		log.Printf("warning: %s", w)
	}
	if err := cfg.CheckBootable(); err != nil {
		halt(err)
	}
	log.Debugf("kernel command line: %s", strings.TrimSpace(string(kernel)))
	return cfg
}

// loadModules starts the two module lanes: it returns when the hardware lane is done (the
// network can come up) and gives a channel that reports when the filesystems are loaded.
func loadModules() <-chan struct{} {
	done := make(chan struct{})
	data, err := os.ReadFile(kmod.PlanFile)
	if errors.Is(err, os.ErrNotExist) {
		log.Printf("no kernel modules in the initramfs: relying on built-in drivers")
		close(done)
		return done
	}
	var ld *kmod.Loader
	plan, err := kmod.ParsePlan(data)
	if err == nil {
		ld, err = kmod.NewLoader(plan, log.Debugf)
	}
	if err != nil {
		log.Printf("kernel modules: %v (going on with built-in drivers)", err)
		close(done)
		return done
	}
	go func() {
		defer close(done)
		res := ld.Features()
		logFailed(res)
		log.Printf("loaded modules %s", orNone(res.Modules))
	}()
	res := ld.Hardware()
	logFailed(res)
	log.Printf("loaded modules %s; drivers for the hardware found: %s", orNone(res.Modules), orNone(res.Drivers))
	return done
}

func logFailed(res kmod.Loaded) {
	for _, f := range res.Failed {
		log.Printf("module %s", f)
	}
}

// waitRandom waits, saying so, until the kernel's random number generator is ready: the
// DHCP client and TLS block on it, and on a VM without a hardware RNG that can take
// minutes.
func waitRandom() {
	b := make([]byte, 1)
	if _, err := unix.Getrandom(b, unix.GRND_NONBLOCK); !errors.Is(err, unix.EAGAIN) {
		return
	}
	log.Printf("waiting for the kernel's random number generator (DHCP and TLS need it; give a VM a hardware RNG such as qemu's -device virtio-rng-pci)")
	start := time.Now()
	_, _ = unix.Getrandom(b, 0)
	log.Printf("random number generator ready after %.1f s", time.Since(start).Seconds())
}

func bringUpNetwork(ip cmdline.IP) netup.Result {
	return retry("bring up the network", func() (netup.Result, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		links, err := netup.WaitLinks(ctx)
		if err != nil {
			return netup.Result{}, err
		}
		res, err := netup.Up(ctx, ip, links)
		if err == nil {
			log.Printf("network: %s", res)
		}
		return res, err
	})
}

// mountImage attaches the served image file to a loop device and mounts it read-only.
// The device's descriptor is held until mount(2) returns: with autoclear, closing it
// first would detach the device under the mount.
func mountImage(file string) (string, error) {
	dev, err := loopdev.Attach(file, loopdev.Options{DirectIO: true, AutoClear: true})
	if err != nil {
		return "", err
	}
	defer dev.Close()
	t, err := sysmount.ReadOnly(dev.Path, lowerDir)
	if err != nil {
		return "", err
	}
	dio := "direct I/O"
	if !dev.DirectIO {
		dio = "buffered I/O"
	}
	log.Printf("mounted %s (%s, %s) on %s", dev.Path, t, dio, lowerDir)
	return string(t), nil
}

// copyToRAM reads the whole image through the root daemon into a file on /run (a tmpfs),
// for nowhere.toram.
func copyToRAM(file string) (string, error) {
	start := time.Now()
	in, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer in.Close()
	dst := "/run/nowhere/image"
	if err := os.MkdirAll("/run/nowhere", 0o755); err != nil {
		return "", err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o444)
	if err != nil {
		return "", err
	}
	n, err := io.CopyBuffer(out, in, make([]byte, 1<<20))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("copy %s to %s: %w", file, dst, err)
	}
	secs := time.Since(start).Seconds()
	log.Printf("toram: copied %s into memory in %.1f s (%s)", units.Bytes(n), secs, units.Rate(n, time.Since(start)))
	return dst, nil
}

func overlay(where string) error {
	if !sysmount.IsMountpoint(rwDir) {
		if where == "tmpfs" || where == "" {
			if err := sysmount.Tmpfs(rwDir); err != nil {
				return err
			}
		} else {
			if err := waitDevice(where, 10*time.Second); err != nil {
				return err
			}
			if _, err := sysmount.ReadWrite(where, rwDir); err != nil {
				return err
			}
		}
	}
	return sysmount.Overlay(lowerDir, rwDir, newRoot)
}

func overlayKind(where string) string {
	if where == "tmpfs" || where == "" {
		return "a tmpfs for writes (lost at power-off)"
	}
	return where + " for writes"
}

// mountCache mounts the cache disk where only the root daemon sees it and returns where
// ("" when it cannot: the boot goes on, a cache only saves downloads).
func mountCache(dev string) string {
	if err := waitDevice(dev, 10*time.Second); err != nil {
		log.Printf("cache: %v: booting without a cache", err)
		return ""
	}
	if _, err := sysmount.ReadWrite(dev, cacheDir); err != nil {
		log.Printf("cache: %v: booting without a cache", err)
		return ""
	}
	log.Printf("cache: %s mounted for chunks", dev)
	return cacheDir
}

// cacheQuota is how much of the cache disk the chunks may fill: 90% of its filesystem, so
// it never fills up under the root (0, no limit, when it cannot be measured).
func cacheQuota(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		log.Printf("cache: %v: no quota", err)
		return 0
	}
	return int64(st.Blocks) * st.Bsize / 10 * 9
}

func metricsNote(url string) string {
	if url == "" {
		return ""
	}
	return "; metrics at " + url
}

func proxyNote(proxy string) string {
	if proxy == "" {
		return ""
	}
	return ", proxy " + proxy
}

func waitDevice(dev string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(dev); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear in %s", dev, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// retry runs fn until it succeeds, waiting longer after each failure (up to 30 s) and
// printing why it failed each time.
func retry[T any](what string, fn func() (T, error)) T {
	wait := time.Second
	for attempt := 1; ; attempt++ {
		v, err := fn()
		if err == nil {
			return v
		}
		log.Printf("cannot %s (attempt %d): %v; trying again in %s", what, attempt, err, wait)
		time.Sleep(wait)
		wait = min(wait*2, 30*time.Second)
	}
}

// halt prints why the boot cannot go on, and keeps printing it: PID 1 must not exit (the
// kernel would panic), and a console attached later should still show the reason.
func halt(err error) {
	for {
		log.Printf("cannot boot: %v", err)
		log.Printf("fix the kernel command line or the image and reboot")
		time.Sleep(time.Minute)
	}
}

func mustExecutable() string {
	exe, err := os.Executable()
	if err != nil {
		return "/init"
	}
	return exe
}

// memCache is the root daemon's memory for chunks: an eighth of RAM, 16 to 128 MiB.
func memCache() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	total := int64(512 << 20)
	if err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			total = kb << 10
		}
	}
	return min(max(total/8, 16<<20), 128<<20)
}

// readAhead maps the command line's value (negative: not given) to the image reader's
// option (which reads 0 as its own default and a negative value as none).
func readAhead(v int64) int64 {
	if v < 0 {
		v = defaultReadAhead
	}
	if v == 0 {
		return -1
	}
	return v
}

// prefetch maps the command line's value (negative: not given) to the daemon's.
func prefetch(v int) int {
	if v < 0 {
		return defaultPrefetch
	}
	return v
}

// defaultPrefetch fills a 100 Mbit/s link 40 ms away with 64 KiB chunks (bandwidth × delay
// = 500 KB): more only queues behind the link and delays the reads that miss the profile.
const defaultPrefetch = 16

// defaultReadAhead is mount's: one policy for both (internal/image/readahead.go). The old
// policy fetched 1.5 to 1.9 times a boot's bytes and was off here; the adaptive one reads
// ahead only on a sustained sequential stream, so a boot's jumping reads fetch no more.
const defaultReadAhead = image.DefaultReadAhead

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}
