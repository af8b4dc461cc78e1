package main

// Replay: the network part of a boot without the emulated CPU. A recorded boot's reads
// (the chunks the root daemon served, in the order of their first read, from the console
// of a local boot) are replayed one after the other, each waiting for the one before, with
// O_DIRECT against a `nowhere mount` that runs in the client's namespace behind the same
// emulated link as the VMs. No think time: this is the worst case for prefetching (the
// reads chase the queue) and the pure cost of the link for the others. The download-first
// method is one plain GET of the image file through the same link. TCG makes a Debian boot
// take 20-60 s of CPU on this machine, with ±15 s of noise from other jobs; a link's cost
// of 1-10 s drowns in it, so this measures that cost alone (the issue allows trace replay
// for iterations; the headline numbers stay the qemu boots).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/profile"
	"github.com/nowhere-boot/nowhere/internal/testnet"
)

// span is one read of the replay: a byte range of the image.
type span struct{ off, len int64 }

// replayTrace returns the reads of the first local noprofile boot in results.jsonl's work
// directory (its console), as byte ranges of version 1.
func (s *setup) replayTrace() ([]span, error) {
	matches, _ := filepath.Glob(s.path("console-local-noprofile-*.log"))
	if len(matches) == 0 {
		return nil, fmt.Errorf("no console-local-noprofile-*.log in %s: run the local noprofile boot first", s.work)
	}
	rec, err := profile.ParseConsole(bytes.NewReader([]byte(readFile(matches[0]))), regexp.MustCompile(`login: `))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", matches[0], err)
	}
	b, err := os.ReadFile(filepath.Join(s.store, "images", rec.Image, strconv.FormatUint(rec.Version, 10)+".index"))
	if err != nil {
		return nil, err
	}
	ix, err := index.Decode(b)
	if err != nil {
		return nil, err
	}
	var out []span
	for _, e := range rec.Entries {
		if e < 0 || e >= len(ix.Entries) {
			return nil, fmt.Errorf("%s: entry %d not in the index", matches[0], e)
		}
		en := ix.Entries[e]
		// Exactly the chunk: FUSE passes O_DIRECT reads at any offset and length; rounding
		// to 4 KiB would touch the neighbouring chunks (content-defined boundaries).
		out = append(out, span{en.Off, int64(en.Len)})
	}
	return out, nil
}

// replayArgs are the mount flags of each method (the boot's defaults: no read-ahead).
var replayArgs = map[string]struct {
	store2005 bool
	version   string
	flags     []string
}{
	"profile":   {false, "2", []string{"--readahead", "0", "--prefetch", "8"}},
	"noprofile": {false, "1", []string{"--readahead", "0", "--prefetch", "0"}},
	"2005":      {true, "1", []string{"--readahead", "0", "--prefetch", "0", "--parallel", "1"}},
	"fetch":     {false, "", nil},
}

// replay runs one method once on a fresh path and returns its result (Login is the time
// from the mount's start, or the GET's, to the last read).
func (s *setup) replay(sc testnet.Scenario, mode string, runNo int, spans []span) (result, error) {
	res := result{Scenario: sc.Name, Mode: mode, Run: runNo, Coverage: -1, Load: loadavg(), Rate: sc.Rate, RTTms: float64(sc.RTT) / 1e6}
	ra := replayArgs[mode]
	p, err := testnet.NewPath(sc)
	if err != nil {
		return res, err
	}
	defer p.Close()
	dir := s.store
	if ra.store2005 {
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
	var elapsed time.Duration
	if mode == "fetch" {
		elapsed, err = download(p.Client, "http://"+proxy.Addr()+"/debian.squashfs")
	} else {
		elapsed, err = s.replayMount(p.Client, "http://"+proxy.Addr()+"/images/debian/"+ra.version, ra.flags, spans)
	}
	if err != nil {
		return res, err
	}
	res.Login = elapsed.Seconds()
	reqs := srv.until(time.Time{})
	for _, r := range reqs {
		res.Requests++
		res.Bytes += r.bytes
	}
	res.Rounds = rounds(reqs, sc.RTT)
	return res, nil
}

// download fetches url from inside the client's namespace to nowhere, as curl would, and
// returns how long it took.
func download(client *testnet.Host, url string) (time.Duration, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return client.Dial(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	start := time.Now()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Minute}).Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// replayMount mounts src in the client's network namespace (only the network namespace,
// so the FUSE mount is visible here), reads spans one by one with O_DIRECT, and
// returns the time from the mount's start to the last read's end.
func (s *setup) replayMount(client *testnet.Host, src string, flags []string, spans []span) (time.Duration, error) {
	mnt, err := os.MkdirTemp(s.work, "replay-mnt-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(mnt)
	state, err := os.MkdirTemp(s.work, "replay-state-") // a fresh rollback state: v2 then v1 is no rollback here
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(state)
	args := append([]string{"mount", src, mnt, "--key", s.pub,
		"--state", filepath.Join(state, "trust-state"), "--mem-cache", "256M"}, flags...)
	if i := slices.Index(flags, "--prefetch"); i >= 0 && flags[i+1] != "0" {
		args = append(args, "--prefetch", strconv.Itoa(s.prefetch)) // the last one counts
	}
	cmd := client.Command(context.Background(), s.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGINT) // the mount unmounts on interrupt
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			unix.Unmount(mnt, unix.MNT_DETACH)
			cmd.Process.Kill()
			<-exited
		}
	}()
	file := filepath.Join(mnt, "debian.img")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(file); err == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return 0, fmt.Errorf("nowhere mount ended (%v): %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("nowhere mount: no %s after 2 minutes: %s", file, stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	fd, err := unix.Open(file, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var largest int64
	for _, sp := range spans {
		largest = max(largest, sp.len)
	}
	raw := make([]byte, largest+4096)
	buf := raw[4096-int(uintptr(unsafe.Pointer(&raw[0]))&4095):][:largest]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, sp := range spans {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("replay: %w", ctx.Err())
		}
		n, err := unix.Pread(fd, buf[:sp.len], sp.off)
		for err == unix.EINTR {
			n, err = unix.Pread(fd, buf[:sp.len], sp.off)
		}
		if err != nil || int64(n) != sp.len {
			return 0, fmt.Errorf("read %d+%d: %d bytes, %v", sp.off, sp.len, n, err)
		}
	}
	return time.Since(start), nil
}

// runReplays replays the boot for every scenario, method and run, then prints the medians,
// the limit (working set / bandwidth + round trips) and the ratios, and returns CSV rows
// (suite boot-replay).
func (s *setup) runReplays(scenarios []testnet.Scenario) ([]csvRow, error) {
	spans, err := s.replayTrace()
	if err != nil {
		return nil, err
	}
	var total int64
	for _, sp := range spans {
		total += sp.len
	}
	fmt.Printf("# replay: %d reads, %.1f MB, one at a time\n", len(spans), float64(total)/1e6)
	fmt.Printf("%-13s %-9s %3s %8s %9s %8s %6s %9s\n", "scenario", "mode", "run", "time_s", "MB", "requests", "rounds", "load")
	out, err := os.OpenFile(s.path("replay.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	var all []result
	for r := 1; r <= s.runs; r++ {
		for _, sc := range scenarios {
			for _, m := range s.modes {
				if _, ok := replayArgs[m]; !ok {
					continue
				}
				res, err := s.replay(sc, m, r, spans)
				if err != nil {
					return nil, fmt.Errorf("replay %s %s run %d: %w", sc.Name, m, r, err)
				}
				all = append(all, res)
				b, _ := json.Marshal(res)
				out.Write(append(b, '\n'))
				fmt.Printf("%-13s %-9s %3d %8.2f %9.1f %8d %6d %9s\n", res.Scenario, res.Mode, res.Run, res.Login, float64(res.Bytes)/1e6, res.Requests, res.Rounds, res.Load)
			}
		}
	}
	var rows []csvRow
	fmt.Println("\n# replay medians")
	for _, sc := range scenarios {
		fmt.Printf("## %s\n", sc.Name)
		var ws float64
		times := map[string]float64{}
		for _, m := range s.modes {
			var rs []result
			for _, r := range all {
				if r.Scenario == sc.Name && r.Mode == m {
					rs = append(rs, r)
				}
			}
			if len(rs) == 0 {
				continue
			}
			t, b, q := median(rs, func(r result) float64 { return r.Login }), median(rs, func(r result) float64 { return float64(r.Bytes) }), median(rs, func(r result) float64 { return float64(r.Requests) })
			times[m] = t
			if m == "noprofile" {
				ws = b
			}
			fmt.Printf("%-9s %7.2f s  %7.1f MB  %5.0f requests  (%d runs)\n", m, t, b/1e6, q, len(rs))
			rows = append(rows, csvRow{sc.Name, csvMethod(m), "login", t, "s"}, csvRow{sc.Name, csvMethod(m), "bytes", b, "B"}, csvRow{sc.Name, csvMethod(m), "requests", q, "1"})
		}
		if sc.Rate > 0 && ws > 0 {
			const unavoidable = 3 // TCP handshake, index, then the chunks (the version is named: no pointer)
			limit := ws*8/float64(sc.Rate) + unavoidable*sc.RTT.Seconds()
			fmt.Printf("limit: %.1f MB / %d Mbit/s + %d x %v = %.2f s\n", ws/1e6, sc.Rate/1_000_000, unavoidable, sc.RTT, limit)
			rows = append(rows, csvRow{sc.Name, "limit", "login", limit, "s"}, csvRow{sc.Name, "limit", "bytes", ws, "B"})
			for _, m := range s.modes {
				if t := times[m]; t > 0 {
					fmt.Printf("%-9s %.2fx the limit", m, t/limit)
					if d := times["fetch"]; d > 0 {
						fmt.Printf(", download-first takes %.2fx as long", d/t)
					}
					fmt.Println()
				}
			}
		}
	}
	return rows, nil
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, 0, len(rs))
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
