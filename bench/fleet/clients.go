package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/fleet"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// ClientsResult is what `clients` prints (JSON) for `run`.
type ClientsResult struct {
	N          int       `json:"n"`
	Times      []float64 `json:"times_s"`
	Failed     int       `json:"failed"`
	FirstErr   string    `json:"first_error,omitempty"`
	FromPeers  int64     `json:"from_peers"`
	FromOrigin int64     `json:"from_origin"`
	// With peers (diagnostics, printed by run).
	MinPeers   int   `json:"min_peers_known"` // 0 when no client finished
	MaxPeers   int   `json:"max_peers_known"`
	HomeHits   int64 `json:"home_hits"`
	HomeMisses int64 `json:"home_misses"`
	Busy       int64 `json:"busy"`
}

// clientsCmd runs N clients at once in this process (inside the LAN host).
func clientsCmd(args []string) error {
	fs := flag.NewFlagSet("clients", flag.ContinueOnError)
	n := fs.Int("n", 1, "clients")
	source := fs.String("source", "", "STORE/images/NAME")
	keyFile := fs.String("key", "", "publisher key")
	tracePath := fs.String("trace", "", "trace file")
	work := fs.String("work", "", "directory for the caches")
	proxy := fs.String("proxy", "", "HTTP proxy")
	share := fs.String("share", "", "share the caches as LAN peers at this IP (port 0)")
	group := fs.String("group", "", "multicast group of announcements")
	size := fs.Int64("size", 0, "image size (to check the trace)")
	first := fs.Int("first", 0, "number of the first client (cache directory client-FIRST)")
	sync := fs.Bool("sync", false, `print "ready" when the clients are, and start them when "go" comes on stdin`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := raiseFileLimit(*n); err != nil {
		return err
	}
	var keys []trust.PublicKey
	if *keyFile != "" {
		var err error
		if keys, err = trust.LoadKeys([]string{*keyFile}); err != nil {
			return err
		}
	}
	tf, err := os.Open(*tracePath)
	if err != nil {
		return err
	}
	tr, err := fleet.ReadTrace(tf, *size)
	tf.Close()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if *proxy != "" {
		if err := waitProxy(ctx, *proxy, *source); err != nil {
			return err
		}
	}
	f := fleet.Fleet{N: *n, First: *first, WorkDir: *work, Peers: *share != "", Template: fleet.Client{
		Source: *source, Keys: keys, Proxy: *proxy, Share: *share, Group: *group, Trace: tr,
	}}
	if *share != "" {
		f.Template.Share = *share + ":0"
	}
	report := func(res fleet.Result) {
		out := ClientsResult{N: *n, Failed: res.Failed, FirstErr: res.FirstErr, FromPeers: res.FromPeers, FromOrigin: res.FromOrigin,
			MinPeers: res.MinPeers, MaxPeers: res.MaxPeers, HomeHits: res.HomeHits, HomeMisses: res.HomeMisses, Busy: res.Busy}
		for _, t := range res.Times {
			out.Times = append(out.Times, t.Seconds())
		}
		_ = json.NewEncoder(os.Stdout).Encode(out)
	}
	if *sync {
		stdin := bufio.NewReader(os.Stdin)
		f.Release = func() error {
			fmt.Println("ready")
			line, err := stdin.ReadString('\n')
			if strings.TrimSpace(line) != "go" {
				return fmt.Errorf("clients: told %q instead of go (%v)", line, err)
			}
			return nil
		}
		// The clients keep sharing until the other processes' clients are done too: run
		// closes stdin when all are.
		f.Done = func(res fleet.Result) {
			report(res)
			_, _ = io.Copy(io.Discard, stdin)
		}
		_, err := f.Run(ctx)
		return err
	}
	res, err := f.Run(ctx)
	if err != nil {
		return err
	}
	report(res)
	return nil
}

// waitProxy waits until the proxy answers a request for the store's mirror list.
func waitProxy(ctx context.Context, proxy, source string) error {
	pu, err := url.Parse(proxy)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 2 * time.Second}
	loc, err := image.ParseLocation(source)
	if err != nil {
		return err
	}
	u := loc.Store + "/mirrors"
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("proxy %s does not answer: %v", proxy, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// raiseFileLimit lifts this process's open-file limit for its clients where it can: as
// LAN peers each holds connections to every other's share, n² sockets on each side for
// a fleet of n, which a real room spreads over n machines (`run` spreads the clients over
// processes, --per-process). Where the limit cannot be raised, the run goes on with it.
func raiseFileLimit(n int) error {
	want := uint64(1024 + 8*n*n)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= want {
		return nil
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if max, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && want > max {
			want = max
		}
	}
	raised := syscall.Rlimit{Cur: want, Max: max(lim.Max, want)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		fmt.Fprintf(os.Stderr, "nowhere-fleet: %d clients may need %d open files, the limit is %d (%v)\n", n, want, lim.Max, err)
	}
	return nil
}
