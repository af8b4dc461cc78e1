package store

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// rateGuard cancels a request whose body arrives slower than a minimum rate, averaged over
// a window: the defence against a server that trickles bytes to hold a client forever.
// It checks on a timer, not on reads, because a stalled read never returns by itself.
type rateGuard struct {
	url    string
	rate   int64 // bytes per second
	min    int64 // bytes per window
	window time.Duration
	cancel context.CancelCauseFunc

	n       atomic.Int64
	mu      sync.Mutex
	last    int64
	timer   *time.Timer
	stopped bool
}

func watchRate(url string, perSecond int64, window time.Duration, cancel context.CancelCauseFunc) *rateGuard {
	g := &rateGuard{url: url, rate: perSecond, min: int64(float64(perSecond) * window.Seconds()), window: window, cancel: cancel}
	if g.min < 1 {
		g.min = 1
	}
	g.timer = time.AfterFunc(window, g.check)
	return g
}

func (g *rateGuard) check() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	n := g.n.Load()
	if got := n - g.last; got < g.min {
		g.cancel(&SlowError{URL: g.url, What: fmt.Sprintf(
			"response too slow: %d bytes in the last %s, below the minimum of %d bytes/s (slow retrieval)",
			got, g.window, g.rate)})
		return
	}
	g.last = n
	g.timer.Reset(g.window)
}

func (g *rateGuard) stop() {
	g.mu.Lock()
	g.stopped = true
	g.timer.Stop()
	g.mu.Unlock()
}

// count returns r, counting what is read through it.
func (g *rateGuard) count(r io.Reader) io.Reader { return countingReader{r, &g.n} }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
