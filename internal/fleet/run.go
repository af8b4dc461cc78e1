package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Fleet is N clients started at the same moment.
type Fleet struct {
	N        int
	Template Client // every client is this one with its own cache directory
	WorkDir  string // the clients' caches go in WorkDir/client-I
	Peers    bool   // clients share their caches (Template.Share is the address, IP:0)
	// Release, when set, is called once every client is ready and returns when they
	// should start (fleets in several processes start together).
	Release func() error
	// First numbers the clients' cache directories from First on (several processes
	// share WorkDir).
	First int
	// Done, when set, is given the result once every client is done, while they all
	// still share (fleets in several processes keep sharing until all are done).
	Done func(Result)
}

// Result sums up a fleet run.
type Result struct {
	Times      []time.Duration // per client, sorted
	Failed     int
	FirstErr   string
	FromPeers  int64
	FromOrigin int64 // received from the mirror (the origin, or the proxy in front of it)
	// With peers: the fewest and most peers a client knew when its replay began, and
	// the nodes' counts summed.
	MinPeers, MaxPeers   int
	HomeHits, HomeMisses int64
	Busy                 int64
	P50, P99, Max        time.Duration
}

// Run starts every client, releases them at once, and waits for all.
func (f Fleet) Run(ctx context.Context) (Result, error) {
	if f.N <= 0 || f.Template.Trace == nil {
		return Result{}, fmt.Errorf("fleet: no clients or no trace")
	}
	ctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	start := make(chan struct{})
	outs := make([]Outcome, f.N)
	closers := make([]func(), f.N)
	var wg, ready sync.WaitGroup
	ready.Add(f.N)
	for i := range f.N {
		c := f.Template
		c.CacheDir = filepath.Join(f.WorkDir, fmt.Sprintf("client-%d", f.First+i))
		if err := os.MkdirAll(c.CacheDir, 0o755); err != nil {
			return Result{}, err
		}
		if !f.Peers {
			c.Share = ""
		}
		wg.Add(1)
		go func() { defer wg.Done(); outs[i], closers[i] = c.Run(ctx, &ready, start) }()
	}
	ready.Wait() // every client opened its cache and waits
	if f.Release != nil {
		if err := f.Release(); err != nil {
			close(start)
			cancelAll()
			wg.Wait()
			for _, c := range closers {
				c()
			}
			return Result{}, err
		}
	}
	close(start)
	wg.Wait()
	res := summarize(outs)
	if f.Done != nil {
		f.Done(res)
	}
	// Every client stayed up (sharing) until all were done: none left the LAN early.
	for _, c := range closers {
		c()
	}
	return res, nil
}

func summarize(outs []Outcome) Result {
	var r Result
	for _, o := range outs {
		if o.Err != nil {
			r.Failed++
			if r.FirstErr == "" {
				r.FirstErr = o.Err.Error()
			}
			continue
		}
		r.Times = append(r.Times, o.Time)
		r.FromPeers += o.FromPeers
		r.FromOrigin += o.FromOrig
		if len(r.Times) == 1 || o.PeersKnown < r.MinPeers {
			r.MinPeers = o.PeersKnown
		}
		r.MaxPeers = max(r.MaxPeers, o.PeersKnown)
		r.HomeHits += o.HomeHits
		r.HomeMisses += o.HomeMisses
		r.Busy += o.Busy
	}
	slices.Sort(r.Times)
	if n := len(r.Times); n > 0 {
		r.P50 = quantile(r.Times, 0.50)
		r.P99 = quantile(r.Times, 0.99)
		r.Max = r.Times[n-1]
	}
	return r
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
