// Command wanboot is the boot benchmark over emulated WAN links (issue 8): Debian booted
// in qemu from a store behind a link emulated with internal/testnet (network namespaces, tbf,
// a delaying proxy), from power-on to the login prompt, with
//
//	profile    nowhere, the index carrying a boot profile the root daemon prefetches
//	noprofile  nowhere, the same image without a profile (chunks fetched as they are read)
//	2005       HTTP-FUSE KNOPPIX's way: fixed 64 KiB chunks, one request at a time, no read-ahead
//	fetch      the whole image downloaded with one plain HTTP GET, then booted (dracut's
//	           root=live:http, live-boot's fetch=)
//
// for each scenario (local: the namespaces and proxy with no limits; 1gbit-2ms;
// 100mbit-40ms). Before measuring it records the profile from real boots
// (nowhere.profile=record on the console, nowhere profile record/apply). It prints one line
// per boot and, per scenario, the medians, the physical limit (working set / bandwidth +
// the unavoidable round trips, on top of the fastest local boot) and the ratios; results.jsonl in
// the work directory has every boot. Run it through bench/wan-boot.sh.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/profile"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/testnet"
)

type config struct {
	bin, kernel, modules, image, work string
	csv                               string // CSV rows of the medians (bench/results format)
	scenarios, modes                  []string
	runs, recordBoots, prefetch       int
	summaryOnly                       bool // no boots: the medians of the work directory's results.jsonl
	replay                            bool // no boots: replay a recorded boot's reads against a mount
	timeout                           time.Duration
}

func main() {
	var c config
	var scen, modes string
	flag.StringVar(&c.bin, "bin", "bin/nowhere", "the nowhere binary (static)")
	flag.StringVar(&c.kernel, "kernel", "", "PVH vmlinux")
	flag.StringVar(&c.modules, "modules", "", "the kernel's modules (lib/modules/VERSION)")
	flag.StringVar(&c.image, "image", "", "the Debian squashfs (scripts/mkimage-debian.sh v1)")
	flag.StringVar(&c.work, "work", "", "work directory (kept; default: a new one under /tmp)")
	flag.StringVar(&c.csv, "csv", "", "append the medians to this CSV file (date,suite,scenario,method,n,metric,value,unit; header if new)")
	flag.StringVar(&scen, "scenarios", "local,1gbit-2ms,100mbit-40ms", "links: local or RATE-RTT")
	flag.StringVar(&modes, "modes", "profile,noprofile,2005,fetch", "what to boot")
	flag.IntVar(&c.runs, "runs", 3, "boots per scenario and mode")
	flag.IntVar(&c.prefetch, "prefetch", 8, "profile: prefetch this many chunks at once (nowhere.prefetch=, mount --prefetch)")
	flag.IntVar(&c.recordBoots, "record-boots", 2, "boots recorded and merged into the profile")
	flag.BoolVar(&c.summaryOnly, "summary", false, "boot nothing: summarize every boot in the work directory's results.jsonl (runs of several invocations)")
	flag.BoolVar(&c.replay, "replay", false, "boot nothing: replay a recorded boot's reads (a local noprofile boot's console in the work directory) against nowhere mount behind each link; suite boot-replay in the CSV")
	flag.DurationVar(&c.timeout, "timeout", 15*time.Minute, "kill a VM that runs longer")
	flag.Parse()
	c.scenarios, c.modes = split(scen), split(modes)
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "wanboot:", err)
		os.Exit(1)
	}
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

// setup is what every boot shares.
type setup struct {
	config
	initrd, store, store2005, pub, secret, state string
	profileFile                                  string
	ix                                           *index.Index // version 2: with the profile
}

func run(c config) error {
	for _, m := range c.modes {
		if _, ok := modeArgs[m]; !ok {
			return fmt.Errorf("unknown mode %q", m)
		}
	}
	var scenarios []testnet.Scenario
	for _, s := range c.scenarios {
		sc, err := testnet.ParseScenario(s)
		if err != nil {
			return err
		}
		scenarios = append(scenarios, sc)
	}
	if err := testnet.Available(); err != nil {
		return err
	}
	if c.work == "" {
		d, err := os.MkdirTemp("", "wanboot-")
		if err != nil {
			return err
		}
		c.work = d
	}
	s := &setup{config: c}
	if c.summaryOnly {
		return s.summarizeFile(scenarios)
	}
	if err := s.prepare(); err != nil {
		return err
	}
	fmt.Printf("# wanboot %s, %d CPUs, work %s\n", time.Now().UTC().Format("2006-01-02T15:04Z"), numCPU(), c.work)
	if c.replay {
		rows, err := s.runReplays(scenarios)
		if err != nil {
			return err
		}
		if c.csv != "" {
			if err := appendCSV(c.csv, "boot-replay", rows); err != nil {
				return err
			}
			fmt.Printf("# %d rows appended to %s\n", len(rows), c.csv)
		}
		return nil
	}
	if err := s.recordProfile(); err != nil {
		return err
	}
	results, err := os.OpenFile(filepath.Join(c.work, "results.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer results.Close()
	fmt.Printf("%-13s %-9s %3s %7s %9s %9s %8s %6s %8s %9s %s\n", "scenario", "mode", "run", "login_s", "handover", "MB", "requests", "rounds", "coverage", "load", "note")
	var all []result
	for r := 1; r <= c.runs; r++ {
		for _, sc := range scenarios {
			// Rotate the order of the modes from run to run: the machine's load drifts.
			order := slices.Clone(c.modes)
			k := (r - 1) % len(order)
			order = append(order[k:], order[:k]...)
			for _, m := range order {
				res, err := s.boot(sc, m, r)
				if err != nil {
					return fmt.Errorf("%s %s run %d: %w", sc.Name, m, r, err)
				}
				all = append(all, res)
				b, _ := json.Marshal(res)
				results.Write(append(b, '\n'))
				fmt.Printf("%-13s %-9s %3d %7.1f %9.1f %9.1f %8d %6d %8s %9s %s\n", res.Scenario, res.Mode, res.Run, res.Login, res.Handover,
					float64(res.Bytes)/1e6, res.Requests, res.Rounds, pct(res.Coverage), res.Load, res.Note)
			}
		}
	}
	rows := summarize(all, scenarios, s)
	if c.csv != "" {
		if err := appendCSV(c.csv, "boot", rows); err != nil {
			return err
		}
		fmt.Printf("# %d rows appended to %s\n", len(rows), c.csv)
	}
	return nil
}

func pct(f float64) string {
	if f < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func (s *setup) path(name string) string { return filepath.Join(s.work, name) }

func (s *setup) nowhere(args ...string) (string, error) {
	cmd := exec.Command(s.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("nowhere %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// prepare makes the keys, the initramfs and the two stores (the image packed as nowhere
// does by default, and in fixed 64 KiB chunks), and puts the image file itself in the
// first store for the download-first boot.
func (s *setup) prepare() error {
	s.secret, s.pub, s.state = s.path("bench.key"), s.path("bench.pub"), s.path("trust-state")
	s.initrd, s.store, s.store2005 = s.path("initrd.img"), s.path("store"), s.path("store-2005")
	s.profileFile = s.path("profile")
	if _, err := os.Stat(s.initrd); err == nil {
		fmt.Printf("# reusing %s\n", s.work)
		return nil
	}
	steps := [][]string{
		{"keygen", "--secret", s.secret, "--public", s.pub, "--no-password"},
		{"initramfs", "-o", s.initrd, "--modules", s.modules, "--key", s.pub},
		{"pack", s.image, "--store", s.store, "--name", "debian", "--key", s.secret, "--progress", "never"},
		{"pack", s.image, "--store", s.store2005, "--name", "debian", "--chunking", "fixed:64K", "--key", s.secret, "--progress", "never"},
	}
	for _, a := range steps {
		if _, err := s.nowhere(a...); err != nil {
			return err
		}
	}
	return exec.Command("cp", s.image, filepath.Join(s.store, "debian.squashfs")).Run()
}

// recordProfile boots version 1 recordBoots times with nowhere.profile=record (no link
// limits), turns each console into a profile file and publishes version 2 with their merge.
func (s *setup) recordProfile() error {
	if _, err := os.Stat(s.path("store/images/debian/2.index")); err != nil {
		var files []string
		for i := 1; i <= s.recordBoots; i++ {
			res, err := s.boot(testnet.Local, "record", i)
			if err != nil {
				return fmt.Errorf("recording boot %d: %w", i, err)
			}
			f := s.path(fmt.Sprintf("record-%d.profile", i))
			if _, err := s.nowhere("profile", "record", "--console", res.console, "--image", s.store+"/images/debian",
				"--key", s.pub, "--state", s.state, "-o", f); err != nil {
				return err
			}
			files = append(files, f)
			fmt.Printf("# recorded boot %d: login after %.1f s\n", i, res.Login)
		}
		if _, err := s.nowhere(append([]string{"profile", "apply", s.store + "/images/debian", "--key", s.secret}, files...)...); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(s.path("store/images/debian/2.index"))
	if err != nil {
		return err
	}
	if s.ix, err = index.Decode(b); err != nil {
		return err
	}
	if err := os.WriteFile(s.profileFile, profile.FromIndex(s.ix).Encode(), 0o644); err != nil {
		return err
	}
	p := profile.FromIndex(s.ix)
	var stored int64
	for _, i := range s.ix.Profile.Entries {
		stored += int64(s.ix.Entries[i].Stored)
	}
	fmt.Printf("# profile: %d chunks, %.1f MB to fetch, from %d boots\n", len(p.Items), float64(stored)/1e6, p.Boots)
	return nil
}

// modeArgs is the kernel command line of each way to boot (and its store).
var modeArgs = map[string]struct {
	store2005 bool
	args      string
}{
	"profile":   {false, "nowhere.image=http://10.0.2.100/images/debian/2 nowhere.profile=record"},
	"noprofile": {false, "nowhere.image=http://10.0.2.100/images/debian/1 nowhere.profile=record"},
	"record":    {false, "nowhere.image=http://10.0.2.100/images/debian/1 nowhere.profile=record"},
	"2005":      {true, "nowhere.image=http://10.0.2.100/images/debian/1 nowhere.parallel=1 nowhere.readahead=0 nowhere.prefetch=0 nowhere.profile=record"},
	"fetch":     {false, "nowhere.fetch=http://10.0.2.100/debian.squashfs nowhere.insecure"},
	"toram":     {false, "nowhere.image=http://10.0.2.100/images/debian/1 nowhere.toram"},
}

// prefetchArg sets the profile's prefetch parallelism when it is not the default (8).
func prefetchArg(mode string, n int) string {
	if mode != "profile" || n == 8 {
		return ""
	}
	return " nowhere.prefetch=" + strconv.Itoa(n)
}

type result struct {
	Scenario string  `json:"scenario"`
	Mode     string  `json:"mode"`
	Run      int     `json:"run"`
	Login    float64 `json:"login_s"`    // qemu start to the login prompt
	Handover float64 `json:"handover_s"` // kernel start to exec of the image's init
	Bytes    int64   `json:"bytes"`      // sent by the server
	Requests int     `json:"requests"`
	Chunks   int     `json:"chunk_requests"`
	Rounds   int     `json:"rounds"`   // dependent request rounds before the login prompt
	Coverage float64 `json:"coverage"` // of the boot's chunk reads by the profile (-1: n/a)
	ReadSet  int64   `json:"read_set_bytes"`
	Load     string  `json:"load"`
	Note     string  `json:"note,omitempty"`
	Rate     int64   `json:"rate_bits"`
	RTTms    float64 `json:"rtt_ms"`
	console  string
}

var (
	loginAt    = regexp.MustCompile(`/login: \*\$/ after ([0-9.]+) s`)
	handoverAt = regexp.MustCompile(`\[\s*([0-9.]+)\] nowhere: switch_root`)
	prefetched = regexp.MustCompile(`prefetched (\d+) chunks \(([^)]*)\) in ([0-9.]+) s`)
	fetchedIn  = regexp.MustCompile(`fetch: downloaded \S+ \(([^)]*)\) in ([0-9.]+) s`)
)

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return "?"
	}
	return f[0]
}

// boot boots one VM in a fresh emulated path and measures it.
func (s *setup) boot(sc testnet.Scenario, mode string, runNo int) (result, error) {
	res := result{Scenario: sc.Name, Mode: mode, Run: runNo, Coverage: -1, Load: loadavg(), Rate: sc.Rate, RTTms: float64(sc.RTT) / 1e6}
	p, err := testnet.NewPath(sc)
	if err != nil {
		return res, err
	}
	defer p.Close()
	ma := modeArgs[mode]
	dir := s.store
	if ma.store2005 {
		dir = s.store2005
	}
	ln, err := p.Server.Listen("tcp", ":0")
	if err != nil {
		return res, err
	}
	srv, err := serve(dir, ln)
	if err != nil {
		return res, err
	}
	defer srv.close()
	addr := net.JoinHostPort(p.Server.Addr.String(), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	proxy, err := testnet.ProxyTo(p.Client, addr, sc.RTT)
	if err != nil {
		return res, err
	}
	defer proxy.Close()
	res.console = s.path(fmt.Sprintf("console-%s-%s-%d.log", sc.Name, mode, runNo))
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout+time.Minute)
	defer cancel()
	cmd := p.Client.Command(ctx, s.bin, "vm", "--kernel", s.kernel, "--initrd", s.initrd, "--forward", proxy.Addr(),
		"--append", "loglevel=4 demo.poweroff "+ma.args+prefetchArg(mode, s.prefetch), "--expect", "login: *$", "--quiet", "--log", res.console,
		"--timeout", s.timeout.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var loginTime time.Time
	w := &lineWatcher{match: loginAt, at: &loginTime}
	cmd.Stderr = io.MultiWriter(&stderr, w)
	runErr := cmd.Run()
	m := loginAt.FindStringSubmatch(stderr.String())
	if m == nil {
		return res, fmt.Errorf("no login prompt (%v): %s\nconsole: %s", runErr, lastLines(stderr.String(), 5), lastLines(readFile(res.console), 20))
	}
	res.Login, _ = strconv.ParseFloat(m[1], 64)
	console := readFile(res.console)
	if h := handoverAt.FindStringSubmatch(console); h != nil {
		res.Handover, _ = strconv.ParseFloat(h[1], 64)
	}
	// What the server sent until the prompt (the guest keeps reading a little afterwards).
	reqs := srv.until(loginTime)
	for _, r := range reqs {
		res.Requests++
		res.Bytes += r.bytes
		if strings.HasPrefix(r.path, "/chunks/") {
			res.Chunks++
		}
	}
	res.Rounds = rounds(reqs, sc.RTT)
	if pm := prefetched.FindStringSubmatch(console); pm != nil {
		res.Note = "prefetched " + pm[1] + " chunks (" + pm[2] + ") in " + pm[3] + " s"
	}
	if fm := fetchedIn.FindStringSubmatch(console); fm != nil {
		res.Note = "downloaded " + fm[1] + " in " + fm[2] + " s"
	}
	if mode != "fetch" && mode != "toram" && mode != "record" {
		if tr, err := bootTrace(console, s, ma.store2005); err == nil {
			res.ReadSet = tr.Bytes()
			if mode == "profile" || mode == "noprofile" {
				res.Coverage = profile.Measure(profile.FromIndex(s.ix), tr).Fraction()
			}
		}
	}
	return res, nil
}

// bootTrace reads the chunks the boot read before the login prompt from its console.
func bootTrace(console string, s *setup, is2005 bool) (*profile.Trace, error) {
	rec, err := profile.ParseConsole(strings.NewReader(console), regexp.MustCompile(`login: `))
	if err != nil {
		return nil, err
	}
	dir := s.store
	if is2005 {
		dir = s.store2005
	}
	b, err := os.ReadFile(filepath.Join(dir, "images", rec.Image, strconv.FormatUint(rec.Version, 10)+".index"))
	if err != nil {
		return nil, err
	}
	ix, err := index.Decode(b)
	if err != nil {
		return nil, err
	}
	return profile.FromEntries(ix, rec.Entries)
}

// lineWatcher notes when a pattern first appears in a stream.
type lineWatcher struct {
	mu    sync.Mutex
	buf   []byte
	match *regexp.Regexp
	at    *time.Time
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.at.IsZero() {
		w.buf = append(w.buf, p...)
		if w.match.Match(w.buf) {
			*w.at = time.Now()
		}
		if len(w.buf) > 1<<20 {
			w.buf = w.buf[len(w.buf)-4096:]
		}
	}
	return len(p), nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// request is one request the server answered.
type request struct {
	path       string
	start, end time.Time
	bytes      int64
}

// countingServer serves a store (nowhere's handler) and logs every request with its times.
type countingServer struct {
	srv  *http.Server
	root *os.Root
	mu   sync.Mutex
	log  []request
}

func serve(dir string, ln net.Listener) (*countingServer, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	s := &countingServer{root: root}
	h := server.Handler(root)
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		s.mu.Lock()
		s.log = append(s.log, request{r.URL.Path, start, time.Now(), cw.n})
		s.mu.Unlock()
	})}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *countingServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.root.Close()
}

// until returns the requests that started before t (all of them when t is zero).
func (s *countingServer) until(t time.Time) []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []request
	for _, r := range s.log {
		if t.IsZero() || r.start.Before(t) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// rounds counts dependent request rounds as the server sees them: a request that arrives
// at least half a round trip after every earlier request was answered could not have been
// sent with them (its client was waiting for an answer first), so it opens a new round;
// requests sent together arrive together. -1 without an added round-trip time (the
// server's answers take microseconds: everything would look dependent).
func rounds(reqs []request, rtt time.Duration) int {
	if rtt <= 0 {
		return -1
	}
	n := 0
	var busyUntil time.Time
	for _, r := range reqs {
		if n == 0 || r.start.Sub(busyUntil) >= rtt/2 {
			n++
		}
		if r.end.After(busyUntil) {
			busyUntil = r.end
		}
	}
	return n
}

// summarizeFile summarizes the boots recorded in results.jsonl (of one or several runs of
// this command on the same work directory) and writes the CSV rows.
func (s *setup) summarizeFile(scenarios []testnet.Scenario) error {
	b, err := os.ReadFile(filepath.Join(s.work, "results.jsonl"))
	if err != nil {
		return err
	}
	var all []result
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("results.jsonl line %d: %w", i+1, err)
		}
		all = append(all, r)
	}
	rows := summarize(all, scenarios, s)
	if s.csv != "" {
		if err := appendCSV(s.csv, "boot", rows); err != nil {
			return err
		}
		fmt.Printf("# %d rows appended to %s\n", len(rows), s.csv)
	}
	return nil
}

// summarize prints medians per scenario and mode, the physical limit and the ratios.
func summarize(all []result, scenarios []testnet.Scenario, s *setup) []csvRow {
	var rows []csvRow
	type key struct{ sc, mode string }
	groups := map[key][]result{}
	for _, r := range all {
		groups[key{r.Scenario, r.Mode}] = append(groups[key{r.Scenario, r.Mode}], r)
	}
	med := func(rs []result, f func(result) float64) float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, f(r))
		}
		sort.Float64s(v)
		if len(v) == 0 {
			return 0
		}
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	login := func(r result) float64 { return r.Login }
	fmt.Println()
	fmt.Println("# medians (login s, MB, requests, rounds) and ratios")
	// The boot's own time (TCG CPU, no network to wait for): the fastest boot of any
	// method on the local scenario, the most favourable estimate under a drifting load.
	localFloor := 0.0
	for _, r := range all {
		if r.Scenario == testnet.Local.Name && (localFloor == 0 || r.Login < localFloor) {
			localFloor = r.Login
		}
	}
	ws := med(groups[key{testnet.Local.Name, "noprofile"}], func(r result) float64 { return float64(r.Bytes) })
	for _, sc := range scenarios {
		fmt.Printf("## %s\n", sc.Name)
		for _, m := range s.modes {
			rs := groups[key{sc.Name, m}]
			if len(rs) == 0 {
				continue
			}
			bytes, requests := med(rs, func(r result) float64 { return float64(r.Bytes) }), med(rs, func(r result) float64 { return float64(r.Requests) })
			fmt.Printf("%-9s login %6.1f s  %7.1f MB  %5.0f requests  %5.0f rounds  coverage %s  (%d runs)\n", m, med(rs, login),
				bytes/1e6, requests, med(rs, func(r result) float64 { return float64(r.Rounds) }), pct(med(rs, func(r result) float64 { return r.Coverage })), len(rs))
			rows = append(rows, csvRow{sc.Name, csvMethod(m), "login", med(rs, login), "s"},
				csvRow{sc.Name, csvMethod(m), "bytes", bytes, "B"}, csvRow{sc.Name, csvMethod(m), "requests", requests, "1"})
		}
		if sc.Rate > 0 && localFloor > 0 && ws > 0 {
			const unavoidable = 4 // TCP handshake, latest pointer, index, then the chunks: each waits for the one before
			net := ws*8/float64(sc.Rate) + unavoidable*sc.RTT.Seconds()
			limit := localFloor + net
			d := med(groups[key{sc.Name, "fetch"}], login)
			fmt.Printf("limit: fastest local boot %.1f s + working set %.1f MB / %d Mbit/s + %d x %v = %.1f s (network part %.2f s)\n",
				localFloor, ws/1e6, sc.Rate/1_000_000, unavoidable, sc.RTT, limit, net)
			rows = append(rows, csvRow{sc.Name, "limit", "login", limit, "s"}, csvRow{sc.Name, "limit", "bytes", ws, "B"})
			for _, m := range s.modes {
				t := med(groups[key{sc.Name, m}], login)
				if t <= 0 {
					continue
				}
				fmt.Printf("%-9s %.2fx the limit", m, t/limit)
				if d > 0 {
					fmt.Printf(", download-first takes %.2fx as long", d/t)
				}
				if lt, ld := med(groups[key{testnet.Local.Name, m}], login), med(groups[key{testnet.Local.Name, "fetch"}], login); lt > 0 && ld > 0 && d > 0 {
					fmt.Printf("; the link adds %.1f s (download-first: %.1f s)", t-lt, d-ld)
				}
				fmt.Println()
			}
		}
	}
	return rows
}

// csvRow is one figure in the shared results format of bench/results (n 1).
type csvRow struct {
	scenario, method, metric string
	value                    float64
	unit                     string
}

// csvMethod names a mode as the results files do.
func csvMethod(mode string) string {
	if mode == "fetch" {
		return "download"
	}
	return mode
}

// appendCSV appends rows of suite to path, writing the header first if the file is new.
func appendCSV(path, suite string, rows []csvRow) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	var b strings.Builder
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		b.WriteString("date,suite,scenario,method,n,metric,value,unit\n")
	}
	date := time.Now().UTC().Format("2006-01-02")
	for _, r := range rows {
		prec := 0 // bytes, requests: whole numbers
		if r.unit == "s" {
			prec = 2
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,1,%s,%s,%s\n", date, suite, r.scenario, r.method, r.metric, strconv.FormatFloat(r.value, 'f', prec, 64), r.unit)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
