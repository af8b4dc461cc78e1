package fleet

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/peer"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// Client is one simulated machine: the read path of `nowhere mount` (and of the boot's
// root daemon) with a disk cache, an HTTP transport and a mirror set of its own, and,
// with peers, a LAN peer node sharing its cache.
type Client struct {
	Source   string            // STORE/images/NAME
	Keys     []trust.PublicKey // trusted publisher keys
	CacheDir string
	Proxy    string // HTTP proxy for the mirrors ("" none)
	// Share, when set, makes the client a LAN peer: its cache served at this address
	// (IP:0 picks a port), found by announcements on Group.
	Share string
	Group string
	Trace *Trace
}

// Outcome is what one client did.
type Outcome struct {
	Time      time.Duration // from the start signal to the last read of the trace
	Err       error
	FromPeers int64 // stored bytes received from LAN peers
	FromOrig  int64 // stored bytes received from mirrors (the origin or the proxy)
	// With peers: how many the client knew when its replay began, and its node's counts.
	PeersKnown           int
	HomeHits, HomeMisses int64 // chunks asked of their home peer: got, did not get
	Busy                 int64 // neighbours' requests refused as too many at once
}

// Run prepares the client, waits for start to close, then loads the image's index and
// replays the trace, returning when done or ctx ends. The client stays up (a peer keeps
// serving its neighbours: a machine that booted stays on the LAN) until the returned
// function is called.
// ready.Done is called once the client waits for start.
func (c *Client) Run(ctx context.Context, ready *sync.WaitGroup, start <-chan struct{}) (Outcome, func()) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	o := c.run(ctx, ready, start, &closers)
	return o, closeAll
}

func (c *Client) run(ctx context.Context, ready *sync.WaitGroup, start <-chan struct{}, closers *[]func()) Outcome {
	readied := false
	defer func() {
		if !readied {
			ready.Done()
		}
	}()
	t := store.NewTransport()
	t.Proxy = nil
	if c.Proxy != "" {
		u, err := url.Parse(c.Proxy)
		if err != nil {
			return Outcome{Err: err}
		}
		t.Proxy = http.ProxyURL(u)
	}
	httpOpt := store.HTTPOptions{Client: &http.Client{Transport: t}}
	*closers = append(*closers, t.CloseIdleConnections)
	loc, err := image.ParseLocation(c.Source)
	if err != nil {
		return Outcome{Err: err}
	}
	loc.Arch = runtime.GOARCH
	v, err := trust.NewVerifier(trust.Policy{Keys: c.Keys, Insecure: len(c.Keys) == 0})
	if err != nil {
		return Outcome{Err: err}
	}
	cache, err := store.OpenDiskCache(c.CacheDir, 0, nil, nil)
	if err != nil {
		return Outcome{Err: err}
	}
	*closers = append(*closers, func() { cache.Close() })
	readied = true
	ready.Done()
	select {
	case <-start:
	case <-ctx.Done():
		return Outcome{Err: ctx.Err()}
	}
	began := time.Now()
	out := Outcome{}
	set, err := store.NewMirrors(ctx, []string{loc.Store}, httpOpt, false, store.MirrorOptions{
		Wait: store.Policy{Timeout: 5 * time.Minute}, MaxPeers: 512, // a room of up to 512 machines: every client knows every peer
	})
	if err != nil {
		return Outcome{Err: err}
	}
	*closers = append(*closers, func() { set.Close() })
	var f store.Fetcher = cache.Fetcher(set)
	files := cache.Store(set)
	var node *peer.Node
	if c.Share != "" {
		node, err = peer.Start(peer.Config{Set: set, Cache: cache, Image: loc.Name, Share: c.Share, Group: c.Group})
		if err != nil {
			return Outcome{Err: err}
		}
		*closers = append(*closers, func() { node.Close() })
		files, f = node.IndexStore(files), node
	}
	ix, _, err := image.LoadVerified(ctx, files, loc, store.Policy{Timeout: time.Minute}, v)
	if err != nil {
		return Outcome{Err: fmt.Errorf("load the index: %w", err)}
	}
	if node != nil {
		node.SetIndex(ix)
		out.PeersKnown = len(set.Peers())
	}
	r := image.NewReader(ix, f, image.Options{CacheBytes: 8 << 20, ReadAhead: -1})
	for _, burst := range c.Trace.Bursts {
		g, gctx := errgroup.WithContext(ctx)
		for _, rd := range burst {
			g.Go(func() error {
				buf := make([]byte, rd.Len)
				_, err := r.ReadAtContext(gctx, buf, rd.Off)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return Outcome{Err: err, Time: time.Since(began)}
		}
	}
	out.Time = time.Since(began)
	if node != nil {
		st := node.Stats()
		out.HomeHits, out.HomeMisses, out.Busy = st.HomeHits.Load(), st.HomeMisses.Load(), st.Busy.Load()
	}
	for _, m := range set.Status() {
		if m.Peer {
			out.FromPeers += m.Bytes
		} else {
			out.FromOrig += m.Bytes
		}
	}
	return out
}
