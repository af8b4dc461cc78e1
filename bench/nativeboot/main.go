// Command nativeboot is the headline benchmark (issue 17 item 1): the Debian image booted
// with systemd-nspawn -b, at native speed, to multi-user.target (the container's READY=1,
// as internal/bootprofile detects it), its root read through an emulated line
// (internal/testnet: network namespaces, tbf for bandwidth, a delaying proxy for RTT). The
// server (an HTTP server answering the store and the raw image, Range requests included)
// is in one namespace, the client (the mount, curl, nbdkit) in another. Methods:
//
//	local      the image on the local disk, loop-mounted (no network): the baseline
//	download   curl the whole image first, then loop-mount it (download-first)
//	nowhere    nowhere mount with its defaults (index without a boot profile)
//	profile    nowhere mount of the version packed with --profile-boot (profile prefetched)
//	2005       fixed 64 KiB chunks, --parallel 1, --readahead 0, --prefetch 0
//	nbdkit     the raw image by HTTP Range requests: nbdkit curl plugin + cache filter,
//	           attached with nbdfuse (libnbd-bin), loop-mounted
//	httpfs2    the raw image by HTTP Range requests through httpfs2 (FUSE)
//	desync     desync mount-index, when a desync binary is on the PATH (else "not run")
//
// Every boot: page caches dropped, fresh namespaces, fresh mount and cache, the image
// loop-mounted read-only, nspawn --volatile=overlay -b; time from the start of the mount
// (or download) to READY=1; bytes are what crossed the line (the proxy's counters, both
// ways). The physical limit per line is max(local boot, working set / bandwidth + 1 RTT),
// the working set being what the local boot read from its loop device. Rounds interleave
// the methods (rotated each round). Run it through bench/native-boot.sh.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/bootprofile"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/testnet"
)

type config struct {
	bin, image, work string
	scenarios        []testnet.Scenario
	methods          []string
	runs             int
	timeout          time.Duration
}

var allMethods = []string{"local", "download", "nowhere", "profile", "2005", "nbdkit", "httpfs2", "desync"}

func main() {
	var c config
	var scen, methods string
	flag.StringVar(&c.bin, "bin", "bin/nowhere", "the nowhere binary")
	flag.StringVar(&c.image, "image", "", "the Debian squashfs (scripts/mkimage-debian.sh v1)")
	flag.StringVar(&c.work, "work", "", "work directory (stores, keys; reused when present)")
	flag.StringVar(&scen, "scenarios", "100mbit-40ms,1gbit-2ms,20mbit-100ms", "lines: RATE-RTT")
	flag.StringVar(&methods, "methods", strings.Join(allMethods, ","), "what to boot")
	flag.IntVar(&c.runs, "runs", 3, "rounds")
	flag.DurationVar(&c.timeout, "timeout", 4*time.Minute, "bound on one boot (mount/download to READY=1)")
	flag.Parse()
	for _, s := range split(scen) {
		sc, err := testnet.ParseScenario(s)
		if err != nil {
			fatal(err)
		}
		c.scenarios = append(c.scenarios, sc)
	}
	c.methods = split(methods)
	for _, m := range c.methods {
		if !slices.Contains(allMethods, m) {
			fatal(fmt.Errorf("unknown method %q (want %s)", m, strings.Join(allMethods, ",")))
		}
	}
	if c.image == "" || c.work == "" {
		fatal(errors.New("-image and -work are needed"))
	}
	if err := run(c); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "nativeboot:", err)
	os.Exit(1)
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

type result struct {
	scenario, method string
	run              int
	secs             float64
	bytes            int64 // crossed the line (proxy, both ways); local: read from the loop device
	note             string
}

func (c *config) path(n string) string { return filepath.Join(c.work, n) }

func (c *config) nowhere(args ...string) error {
	out, err := exec.Command(c.bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nowhere %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// prepare: keys, the store (version 1 by default, version 2 with --profile-boot), the 2005
// store (fixed 64 KiB chunks), the raw image next to them.
func (c *config) prepare() error {
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(c.path("ready")); err == nil {
		fmt.Printf("# reusing %s\n", c.work)
		return nil
	}
	key, pub := c.path("bench.key"), c.path("bench.pub")
	os.RemoveAll(c.path("store"))
	os.RemoveAll(c.path("store-2005"))
	os.Remove(key)
	os.Remove(pub)
	for _, a := range [][]string{
		{"keygen", "--secret", key, "--public", pub, "--no-password"},
		{"pack", c.image, "--store", c.path("store"), "--name", "debian", "--sign-key", key, "--progress", "never"},
		{"pack", c.image, "--store", c.path("store"), "--name", "debian", "--sign-key", key, "--progress", "never", "--profile-boot"},
		{"pack", c.image, "--store", c.path("store-2005"), "--name", "debian", "--chunking", "fixed:64K", "--sign-key", key, "--progress", "never"},
	} {
		if err := c.nowhere(a...); err != nil {
			return err
		}
	}
	if _, err := os.Stat(c.path("store/images/debian/2.index")); err != nil {
		return fmt.Errorf("pack --profile-boot published no version 2: %w", err)
	}
	if err := exec.Command("cp", c.image, c.path("debian.img")).Run(); err != nil {
		return err
	}
	return os.WriteFile(c.path("ready"), nil, 0o644)
}

func run(c config) error {
	if err := testnet.Available(); err != nil {
		return err
	}
	if err := c.prepare(); err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	fmt.Printf("# nativeboot %s, %s, %d CPUs, load %s, image %s (%.1f MB)\n", time.Now().UTC().Format("2006-01-02T15:04Z"),
		hostname, numCPU(), loadavg(), c.image, float64(fileSize(c.image))/1e6)
	fmt.Printf("%-13s %-9s %3s %8s %10s %6s  %s\n", "line", "method", "run", "secs", "MB", "load", "note")
	var all []result
	netMethods := slices.DeleteFunc(slices.Clone(c.methods), func(m string) bool { return m == "local" })
	for r := 1; r <= c.runs; r++ {
		if slices.Contains(c.methods, "local") {
			res, err := c.boot(nil, "local", r)
			if err != nil {
				return fmt.Errorf("local run %d: %w", r, err)
			}
			all = append(all, res)
			printResult(res)
		}
		for _, sc := range c.scenarios {
			order := slices.Clone(netMethods)
			if len(order) > 0 {
				k := (r - 1) % len(order)
				order = append(order[k:], order[:k]...)
			}
			for _, m := range order {
				if m == "desync" && !haveDesync() {
					continue // the summary's row says "not run"
				}
				res, err := c.boot(&sc, m, r)
				if err != nil {
					// One failed boot is a row, not the end of the run.
					res = result{scenario: sc.Name, method: m, run: r, secs: -1, note: "FAILED: " + oneLine(err.Error())}
				}
				all = append(all, res)
				printResult(res)
			}
		}
	}
	summarize(c, all)
	return nil
}

func haveDesync() bool {
	_, err := exec.LookPath("desync")
	return err == nil
}

func printResult(r result) {
	secs := fmt.Sprintf("%8.2f", r.secs)
	if r.secs < 0 {
		secs = fmt.Sprintf("%8s", "-")
	}
	fmt.Printf("%-13s %-9s %3d %s %10.1f %6s  %s\n", r.scenario, r.method, r.run, secs, float64(r.bytes)/1e6, loadavg(), r.note)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return -1
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(c config, all []result) {
	pick := func(scen, m string) (secs, bytes []float64, failed int) {
		for _, r := range all {
			if r.scenario == scen && r.method == m {
				if r.secs < 0 {
					failed++
					continue
				}
				secs = append(secs, r.secs)
				bytes = append(bytes, float64(r.bytes))
			}
		}
		return
	}
	localS, localB, _ := pick("local", "local")
	ls, ws := median(localS), median(localB)
	fmt.Printf("\n# medians of %d rounds; ratios: method / download-first and method / physical limit\n", c.runs)
	if ls > 0 {
		fmt.Printf("# local disk: %.2f s, working set %.1f MB (read from the loop device)\n", ls, ws/1e6)
	}
	fmt.Printf("| line | method | boot s | MB over the line | / download-first | / physical limit | n |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, sc := range c.scenarios {
		limit := -1.0
		if ls > 0 {
			limit = max(ls, ws*8/float64(sc.Rate)+sc.RTT.Seconds())
		}
		dlS, _, _ := pick(sc.Name, "download")
		dl := median(dlS)
		for _, m := range c.methods {
			if m == "local" {
				continue
			}
			s, b, failed := pick(sc.Name, m)
			if m == "desync" && len(s) == 0 && failed == 0 {
				fmt.Printf("| %s | desync | not run (no desync on the PATH) | | | | 0 |\n", sc.Name)
				continue
			}
			if len(s) == 0 {
				fmt.Printf("| %s | %s | failed | | | | %d failed |\n", sc.Name, m, failed)
				continue
			}
			ms := median(s)
			n := strconv.Itoa(len(s))
			if failed > 0 {
				n += fmt.Sprintf(" (+%d failed)", failed)
			}
			fmt.Printf("| %s | %s | %.2f | %.1f | %s | %s | %s |\n", sc.Name, m, ms, median(b)/1e6, ratio(ms, dl), ratio(ms, limit), n)
		}
		if limit > 0 {
			fmt.Printf("| %s | physical limit | %.2f | %.1f | %s | 1.00 | |\n", sc.Name, limit, ws/1e6, ratio(limit, dl))
		}
	}
	if ls > 0 {
		fmt.Printf("| (no line) | local disk | %.2f | (%.1f read) | | | %d |\n", ls, ws/1e6, len(localS))
	}
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// cleanup is a stack of undo steps, run in reverse order.
type cleanup []func()

func (u *cleanup) add(f func()) { *u = append(*u, f) }
func (u *cleanup) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
}

// boot runs one boot; sc nil is the local disk.
func (c *config) boot(sc *testnet.Scenario, method string, runNo int) (res result, err error) {
	res = result{method: method, run: runNo, scenario: "local"}
	if sc != nil {
		res.scenario = sc.Name
	}
	tmp, err := os.MkdirTemp("", "nativeboot-")
	if err != nil {
		return res, err
	}
	var undo cleanup
	defer func() { undo.run(); os.RemoveAll(tmp) }()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	var proxy *testnet.Proxy
	var p *testnet.Path
	if sc != nil {
		if p, err = testnet.NewPath(*sc); err != nil {
			return res, err
		}
		undo.add(func() { p.Close() })
		ln, err := p.Server.Listen("tcp", ":0")
		if err != nil {
			return res, err
		}
		srv := &http.Server{Handler: c.handler()}
		go srv.Serve(ln)
		undo.add(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
			srv.Close()
		})
		addr := net.JoinHostPort(p.Server.Addr.String(), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		if proxy, err = testnet.ProxyTo(p.Client, addr, sc.RTT); err != nil {
			return res, err
		}
		undo.add(func() { proxy.Close() })
	}
	if err := dropCaches(); err != nil {
		return res, err
	}
	start := time.Now()
	var imgFile string
	direct := true // loop devices over a network file read it with direct I/O, as nowhere's boot does
	base := func() string { return "http://" + proxy.Addr() }
	switch method {
	case "local":
		imgFile, direct = c.path("debian.img"), false
	case "download":
		imgFile, direct = filepath.Join(tmp, "debian.img"), false
		cmd := p.Client.Command(ctx, "curl", "-fsS", "-o", imgFile, base()+"/raw/debian.img")
		if out, err := cmd.CombinedOutput(); err != nil {
			return res, fmt.Errorf("curl: %v: %s", err, out)
		}
		res.note = fmt.Sprintf("downloaded in %.2f s", time.Since(start).Seconds())
	case "nowhere", "profile", "2005":
		mnt := filepath.Join(tmp, "mnt")
		os.Mkdir(mnt, 0o755)
		src, extra := base()+"/images/debian/1", []string(nil)
		switch method {
		case "profile":
			src = base() + "/images/debian/2"
		case "2005":
			src = base() + "/store-2005/images/debian/1"
			extra = []string{"--parallel", "1", "--readahead", "0", "--prefetch", "0"}
		}
		args := append([]string{"mount", src, mnt, "--key", c.path("bench.pub"), "--cache", filepath.Join(tmp, "cache"),
			"--state", filepath.Join(tmp, "state")}, extra...)
		if err := c.fuseProc(ctx, &undo, p.Client.Command(context.Background(), c.bin, args...), mnt, filepath.Join(mnt, "debian.img"), tmp); err != nil {
			return res, err
		}
		imgFile = filepath.Join(mnt, "debian.img")
	case "nbdkit":
		mnt := filepath.Join(tmp, "mnt")
		os.Mkdir(mnt, 0o755)
		cmd := p.Client.Command(context.Background(), "nbdfuse", "-r", mnt, "--command",
			"nbdkit", "-s", "--exit-with-parent", "-r", "--filter=cache", "curl", base()+"/raw/debian.img")
		if err := c.fuseProc(ctx, &undo, cmd, mnt, filepath.Join(mnt, "nbd"), tmp); err != nil {
			return res, err
		}
		imgFile = filepath.Join(mnt, "nbd")
	case "httpfs2":
		mnt := filepath.Join(tmp, "mnt")
		os.Mkdir(mnt, 0o755)
		cmd := p.Client.Command(context.Background(), "httpfs2", "-f", "-c", "/dev/null", base()+"/raw/debian.img", mnt)
		if err := c.fuseProc(ctx, &undo, cmd, mnt, filepath.Join(mnt, "debian.img"), tmp); err != nil {
			return res, err
		}
		imgFile = filepath.Join(mnt, "debian.img")
	case "desync":
		return res, errors.New("desync: not wired up (no desync binary here to try it with)")
	}
	dev, err := losetup(ctx, imgFile, direct)
	if err != nil {
		return res, err
	}
	undo.add(func() { exec.Command("losetup", "--detach", dev).Run() })
	readBefore := loopBytesRead(dev) // the device's counters outlive earlier attachments
	root := filepath.Join(tmp, "root")
	os.Mkdir(root, 0o755)
	if out, err := exec.CommandContext(ctx, "mount", "-t", "squashfs", "-o", "ro", dev, root).CombinedOutput(); err != nil {
		return res, fmt.Errorf("mount %s: %v: %s", dev, err, out)
	}
	undo.add(func() { unmount(root) })
	if err := nspawn(ctx, root, tmp, runNo); err != nil {
		return res, err
	}
	res.secs = time.Since(start).Seconds()
	if proxy != nil {
		st := proxy.Stats()
		res.bytes = st.BytesDown + st.BytesUp
	} else {
		res.bytes = loopBytesRead(dev) - readBefore
	}
	return res, nil
}

// handler answers the store (/images, /chunks), the 2005 store under /store-2005/ and the
// raw image at /raw/debian.img (http.ServeContent: Range requests).
func (c *config) handler() http.Handler {
	root, _ := os.OpenRoot(c.path("store"))
	root2005, _ := os.OpenRoot(c.path("store-2005"))
	mux := http.NewServeMux()
	mux.Handle("/store-2005/", http.StripPrefix("/store-2005", server.Handler(root2005)))
	mux.HandleFunc("/raw/debian.img", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, c.path("debian.img"))
	})
	mux.Handle("/", server.Handler(root))
	return mux
}

// fuseProc starts a FUSE client (in the client's namespace) and waits, bounded, for its
// file to appear; its undo stops it and unmounts.
func (c *config) fuseProc(ctx context.Context, undo *cleanup, cmd *exec.Cmd, mnt, file, tmp string) error {
	logf, err := os.Create(filepath.Join(tmp, filepath.Base(cmd.Args[3])+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := start(cmd); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	undo.add(func() {
		exec.Command("umount", mnt).Run()
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(8 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		}
		exec.Command("umount", "-l", mnt).Run()
	})
	for {
		if st, err := os.Stat(file); err == nil && st.Size() > 0 {
			return nil
		}
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("%s exited (%v) before %s appeared: %s", cmd.Args[3], err, file, lastLines(string(b), 3))
		case <-ctx.Done():
			return fmt.Errorf("%s did not appear: %w", file, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// spawn runs every Start on one OS thread that never exits: Pdeathsig fires when the
// thread that forked a child ends, and testnet's Do ends the threads it locks, which may
// be any thread the runtime had before.
var spawn = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked: this thread lives as long as the process
		for f := range spawn {
			f()
		}
	}()
}

func start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawn <- func() { errc <- cmd.Start() }
	return <-errc
}

func losetup(ctx context.Context, file string, direct bool) (string, error) {
	args := []string{"--find", "--show", "--read-only"}
	if direct {
		args = append(args, "--direct-io=on")
	}
	out, err := exec.CommandContext(ctx, "losetup", append(args, file)...).CombinedOutput()
	if err != nil && direct {
		return losetup(ctx, file, false)
	}
	if err != nil {
		return "", fmt.Errorf("losetup %s: %v: %s", file, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// loopBytesRead is the bytes read from the loop device so far (/sys/block/loopN/stat,
// sectors read).
func loopBytesRead(dev string) int64 {
	b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0
	}
	n, _ := strconv.ParseInt(f[2], 10, 64)
	return n * 512
}

func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200)
}

// nspawn boots root until the container's systemd says READY=1 (multi-user.target, the
// unit it boots to), then stops the container, bounded (internal/bootprofile's method).
func nspawn(ctx context.Context, root, tmp string, runNo int) error {
	sockPath := filepath.Join(tmp, "notify")
	sock, ready, err := bootprofile.ReadyNotifications(sockPath)
	if err != nil {
		return err
	}
	defer sock.Close()
	console, err := os.Create(filepath.Join(tmp, "console.log"))
	if err != nil {
		return err
	}
	defer console.Close()
	cmd := exec.Command("systemd-nspawn", "--boot", "--directory", root, "--register=no", "--keep-unit",
		"--machine", fmt.Sprintf("nativeboot-%d-%d", os.Getpid(), runNo), "--volatile=overlay",
		"--private-network", "--link-journal=no", "--console=pipe", "--notify-ready=yes",
		"--", "systemd.unit=multi-user.target")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath)
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := start(cmd); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var bootErr error
	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		bootErr = fmt.Errorf("systemd-nspawn ended (%v) before multi-user.target: %s", err, lastLines(readFile(console.Name()), 3))
	case <-ctx.Done():
		bootErr = fmt.Errorf("multi-user.target not reached: %w: %s", ctx.Err(), lastLines(readFile(console.Name()), 3))
	}
	for _, st := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGTERM, 3 * time.Second}, {syscall.SIGTERM, 5 * time.Second}, {syscall.SIGKILL, 5 * time.Second}} {
		_ = cmd.Process.Signal(st.sig)
		select {
		case <-exited:
			return bootErr
		case <-time.After(st.wait):
		}
	}
	return errors.Join(bootErr, fmt.Errorf("systemd-nspawn (pid %d) did not exit after SIGKILL", cmd.Process.Pid))
}

func unmount(dir string) {
	for i := 0; i < 20; i++ {
		if err := syscall.Unmount(dir, 0); err == nil || errors.Is(err, syscall.EINVAL) {
			return
		} else if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Unmount(dir, syscall.MNT_DETACH)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader([]byte(s)))
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			lines = append(lines, t)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
