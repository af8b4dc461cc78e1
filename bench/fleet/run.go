package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/fleet"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/testnet"
)

type runConfig struct {
	store, image, key, trace string
	ns                       []int
	modes                    []string
	rate                     string
	burst                    int
	delay                    time.Duration
	results                  string
	scenario                 string
	perProcess               int
}

// children are the process groups a run started, killed when the run is interrupted.
var children sync.Map

// Row is one fleet run's figures.
type Row struct {
	Mode          string
	N             int
	P50, P99, Max float64 // seconds
	Failed        int
	Origin        Counts
	FromPeers     int64
	WorkingSet    int64 // stored bytes of the chunks the trace reads
	WorkingChunks int
	// CPU is the processor time the run's processes used (clients, origin, proxy):
	// on a machine of few cores, CPU ÷ cores bounds how fast the fleet can finish.
	CPU float64 // seconds
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c runConfig
	var ns, modes string
	fs.StringVar(&c.store, "store", "", "store directory")
	fs.StringVar(&c.image, "image", "", "image name")
	fs.StringVar(&c.key, "key", "", "publisher key (public)")
	fs.StringVar(&c.trace, "trace", "", "trace of a boot (nowhere-fleet trace)")
	fs.StringVar(&ns, "n", "1,10,50,200", "fleet sizes")
	fs.StringVar(&modes, "modes", "direct,proxy,peers", "direct, proxy (squid on the LAN), peers (LAN peers)")
	fs.StringVar(&c.rate, "rate", "100mbit", "the origin's link (tc tbf rate)")
	fs.IntVar(&c.burst, "burst", 256<<10, "tbf bucket in bytes")
	fs.DurationVar(&c.delay, "delay", 40*time.Millisecond, "the origin answers each request this much later (round trip)")
	fs.StringVar(&c.results, "results", "", "append the figures to this CSV (bench/results format)")
	fs.StringVar(&c.scenario, "scenario", "", "scenario name in the results (default RATE-DELAY)")
	fs.IntVar(&c.perProcess, "per-process", 25, "clients per process (each process has its own open-file limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.store == "" || c.image == "" || c.trace == "" {
		return fmt.Errorf("run: --store, --image and --trace are required")
	}
	if c.perProcess < 1 {
		return fmt.Errorf("--per-process: want at least 1")
	}
	rate, err := testnet.ParseRate(c.rate)
	if err != nil {
		return fmt.Errorf("--rate: %w", err)
	}
	if c.scenario == "" {
		c.scenario = c.rate + "-" + c.delay.String()
	}
	for _, s := range strings.Split(ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("--n: %q is not a fleet size (1..1000)", s)
		}
		c.ns = append(c.ns, n)
	}
	for _, m := range strings.Split(modes, ",") {
		if m = strings.TrimSpace(m); !slices.Contains([]string{"direct", "proxy", "peers"}, m) {
			return fmt.Errorf("--modes: unknown mode %q", m)
		}
		c.modes = append(c.modes, strings.TrimSpace(m))
	}
	if err := testnet.Available(); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if slices.Contains(c.modes, "proxy") {
		if _, err := exec.LookPath("squid"); err != nil {
			return fmt.Errorf("run: squid is not installed (scripts/install-deps.sh bench)")
		}
	}
	for _, p := range []*string{&c.store, &c.key, &c.trace} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	ix, err := loadIndex(c.store, c.image)
	if err != nil {
		return err
	}
	tf, err := os.Open(c.trace)
	if err != nil {
		return err
	}
	tr, err := fleet.ReadTrace(tf, ix.Size)
	tf.Close()
	if err != nil {
		return err
	}
	wsBytes, wsChunks := workingSet(tr, ix)
	reads, rbytes := tr.Reads()
	fmt.Printf("# fleet %s: image %s (%.1f MB), trace %d reads of %.1f MB in %d bursts, working set %d chunks, %.1f MB stored\n",
		time.Now().UTC().Format("2006-01-02 15:04Z"), c.image, float64(ix.Size)/1e6, reads, float64(rbytes)/1e6,
		len(tr.Bursts), wsChunks, float64(wsBytes)/1e6)
	fmt.Printf("# origin link %s (tbf), %s per request; LAN unshaped; %d CPUs; load %s\n", c.rate, c.delay, numCPU(), loadavg())

	lan, err := testnet.New()
	if err != nil {
		return err
	}
	defer lan.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		children.Range(func(pid, _ any) bool { syscall.Kill(-pid.(int), syscall.SIGKILL); return true })
		time.Sleep(200 * time.Millisecond)
		lan.Close()
		os.Exit(130)
	}()
	// The origin's uplink is shaped; packets wait up to 100 ms in its queue (a generous
	// router buffer) before they are dropped.
	o, err := lan.AddHost("o", testnet.Link{Up: rate, Burst: int64(c.burst), Queue: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	l, err := lan.AddHost("l", testnet.Link{})
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("%-7s %5s %9s %8s %9s %8s %8s %8s %8s %7s %7s\n", "mode", "n", "origin_MB", "xWS", "requests", "p50_s", "p99_s", "max_s", "peers_MB", "cpu_s", "failed")
	for _, mode := range c.modes {
		for _, n := range c.ns {
			before := childrenCPU()
			r, err := c.one(self, o, l, mode, n, ix)
			if err != nil {
				return fmt.Errorf("%s n=%d: %w", mode, n, err)
			}
			r.CPU = childrenCPU() - before
			r.WorkingSet, r.WorkingChunks = wsBytes, wsChunks
			fmt.Printf("%-7s %5d %9.1f %8.2f %9d %8.2f %8.2f %8.2f %8.1f %7.1f %7d\n", mode, n, float64(r.Origin.Bytes)/1e6,
				float64(r.Origin.ChunkBytes)/float64(wsBytes), r.Origin.Requests, r.P50, r.P99, r.Max, float64(r.FromPeers)/1e6, r.CPU, r.Failed)
			if c.results != "" {
				if err := appendResults(c.results, c.scenario, r); err != nil {
					return err
				}
			}
		}
	}
	fmt.Printf("# load after: %s\n", loadavg())
	return nil
}

// one runs a fleet of n in mode on fresh servers (a cold proxy) and returns the figures.
func (c *runConfig) one(self string, o, l *testnet.Host, mode string, n int, ix *index.Index) (Row, error) {
	work, err := os.MkdirTemp(shmOrTmp(), "nowhere-fleet-")
	if err != nil {
		return Row{}, err
	}
	defer os.RemoveAll(work)
	os.Chmod(work, 0o755) // squid runs as the proxy user
	countsPath := filepath.Join(work, "counts.json")
	origin := o.Command(context.Background(), self, "origin", "--store", c.store, "--listen", net.JoinHostPort(o.Addr.String(), "80"), "--delay", c.delay.String(), "--counts", countsPath)
	var originOut bytes.Buffer
	origin.Stdout, origin.Stderr = &originOut, &originOut
	origin.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := origin.Start(); err != nil {
		return Row{}, err
	}
	children.Store(origin.Process.Pid, true)
	defer children.Delete(origin.Process.Pid)
	defer syscall.Kill(-origin.Process.Pid, syscall.SIGKILL)
	for i := 0; !strings.Contains(originOut.String(), "origin serving"); i++ {
		if i > 300 {
			return Row{}, fmt.Errorf("origin did not start: %s", originOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	args := []string{"clients", "--sync", "--source", "http://" + o.Addr.String() + "/images/" + c.image,
		"--trace", c.trace, "--work", filepath.Join(work, "clients"), "--size", strconv.FormatInt(ix.Size, 10)}
	if c.key != "" {
		args = append(args, "--key", c.key)
	}
	switch mode {
	case "proxy":
		stop, err := startSquid(l, work)
		if err != nil {
			return Row{}, err
		}
		defer stop()
		args = append(args, "--proxy", "http://127.0.0.1:3128")
	case "peers":
		args = append(args, "--share", l.Addr.String())
	}
	res, err := c.clients(self, l, n, args)
	if err != nil {
		return Row{}, err
	}
	syscall.Kill(origin.Process.Pid, syscall.SIGTERM)
	_ = origin.Wait()
	var counts Counts
	b, err := os.ReadFile(countsPath)
	if err != nil {
		return Row{}, fmt.Errorf("origin counts: %v (%s)", err, originOut.String())
	}
	if err := json.Unmarshal(b, &counts); err != nil {
		return Row{}, err
	}
	r := Row{Mode: mode, N: n, Failed: res.Failed, Origin: counts, FromPeers: res.FromPeers}
	if mode == "peers" {
		fmt.Fprintf(os.Stderr, "# peers n=%d: each knew %d..%d peers at start; home peers: %d hits, %d misses; %d requests refused busy\n",
			n, res.MinPeers, res.MaxPeers, res.HomeHits, res.HomeMisses, res.Busy)
	}
	if res.Failed > 0 {
		fmt.Fprintf(os.Stderr, "# %s n=%d: %d clients failed: %s\n", mode, n, res.Failed, res.FirstErr)
	}
	slices.Sort(res.Times)
	if len(res.Times) > 0 {
		r.P50, r.P99, r.Max = quantile(res.Times, 0.5), quantile(res.Times, 0.99), res.Times[len(res.Times)-1]
	}
	return r, nil
}

// clients runs n clients in processes of at most perProcess in the LAN host, started
// together, and merges what they report.
func (c *runConfig) clients(self string, l *testnet.Host, n int, args []string) (ClientsResult, error) {
	type proc struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stdout *bufio.Reader
		stderr bytes.Buffer
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			children.Delete(p.cmd.Process.Pid)
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			_ = p.cmd.Wait()
		}
	}()
	for first := 0; first < n; first += c.perProcess {
		k := min(c.perProcess, n-first)
		p := &proc{}
		p.cmd = l.Command(context.Background(), self, append(args, "--n", strconv.Itoa(k), "--first", strconv.Itoa(first))...)
		p.cmd.Stderr = &p.stderr
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		in, err := p.cmd.StdinPipe()
		if err != nil {
			return ClientsResult{}, err
		}
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			return ClientsResult{}, err
		}
		if err := p.cmd.Start(); err != nil {
			return ClientsResult{}, err
		}
		children.Store(p.cmd.Process.Pid, true)
		p.stdin, p.stdout = in, bufio.NewReader(out)
		procs = append(procs, p)
	}
	// Every process has its clients ready (caches open), then all start at once.
	for _, p := range procs {
		line, err := p.stdout.ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			return ClientsResult{}, fmt.Errorf("clients: %q instead of ready (%v): %s", line, err, p.stderr.String())
		}
	}
	for _, p := range procs {
		if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
			return ClientsResult{}, err
		}
	}
	all := ClientsResult{N: n}
	for i, p := range procs {
		var res ClientsResult
		if err := json.NewDecoder(p.stdout).Decode(&res); err != nil {
			_ = p.cmd.Wait()
			return ClientsResult{}, fmt.Errorf("clients: %v: %s", err, p.stderr.String())
		}
		all.Times = append(all.Times, res.Times...)
		all.Failed += res.Failed
		if all.FirstErr == "" {
			all.FirstErr = res.FirstErr
		}
		all.FromPeers += res.FromPeers
		all.FromOrigin += res.FromOrigin
		if i == 0 || res.MinPeers < all.MinPeers {
			all.MinPeers = res.MinPeers
		}
		all.MaxPeers = max(all.MaxPeers, res.MaxPeers)
		all.HomeHits += res.HomeHits
		all.HomeMisses += res.HomeMisses
		all.Busy += res.Busy
	}
	// Every client stayed up until its process's clients were done; the processes
	// finish on their own once they printed.
	for _, p := range procs {
		_ = p.stdin.Close()
		if err := p.cmd.Wait(); err != nil {
			return ClientsResult{}, fmt.Errorf("clients: %v: %s", err, p.stderr.String())
		}
		children.Delete(p.cmd.Process.Pid)
	}
	procs = nil
	return all, nil
}

func quantile(s []float64, q float64) float64 {
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// workingSet returns the stored bytes and the number of the distinct chunks the trace reads.
func workingSet(tr *fleet.Trace, ix *index.Index) (int64, int) {
	seen := map[chunk.ID]bool{}
	var bytes int64
	for _, b := range tr.Bursts {
		for _, rd := range b {
			i, _ := slices.BinarySearchFunc(ix.Entries, rd.Off, func(e index.Entry, off int64) int {
				switch {
				case e.Off+int64(e.Len) <= off:
					return -1
				case e.Off > off:
					return 1
				}
				return 0
			})
			for ; i < len(ix.Entries) && ix.Entries[i].Off < rd.Off+rd.Len; i++ {
				e := ix.Entries[i]
				if !e.Zero && !seen[e.ID] {
					seen[e.ID] = true
					bytes += int64(e.Stored)
				}
			}
		}
	}
	return bytes, len(seen)
}

func shmOrTmp() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

func numCPU() int { return runtimeNumCPU() }

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// appendResults adds the run's figures to a results CSV (bench/results/README.md).
func appendResults(path, scenario string, r Row) error {
	_, err := os.Stat(path)
	f, ferr := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if ferr != nil {
		return ferr
	}
	defer f.Close()
	if os.IsNotExist(err) {
		fmt.Fprintln(f, "date,suite,scenario,method,n,metric,value,unit")
	}
	date := time.Now().UTC().Format(time.RFC3339)
	add := func(metric string, v float64, unit string) {
		fmt.Fprintf(f, "%s,fleet,%s,%s,%d,%s,%g,%s\n", date, scenario, r.Mode, r.N, metric, v, unit)
	}
	add("p50", r.P50, "s")
	add("p99", r.P99, "s")
	add("max", r.Max, "s")
	add("origin_bytes", float64(r.Origin.Bytes), "B")
	add("origin_requests", float64(r.Origin.Requests), "1")
	add("origin_chunk_bytes", float64(r.Origin.ChunkBytes), "B")
	add("origin_chunk_requests", float64(r.Origin.ChunkRequests), "1")
	add("working_set_bytes", float64(r.WorkingSet), "B")
	add("working_set_chunks", float64(r.WorkingChunks), "1")
	add("from_peers_bytes", float64(r.FromPeers), "B")
	add("failed", float64(r.Failed), "1")
	add("cpu", r.CPU, "s")
	return nil
}

// childrenCPU is the user and system time of this process's waited-for children so far.
func childrenCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
