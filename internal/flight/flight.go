// Package flight runs one call per key however many callers want its result at the same
// time (single-flight), and cancels that call when the last caller stops waiting for it.
//
// The image reader, the peer node and the prefetcher each fetch a chunk once for everyone
// who wants it. What they share is here, written once: a count of the callers waiting on
// a call; the call's context, cancelled when that count drops to zero (so a read the
// kernel gave up on cancels its HTTP request); and forgetting such a call at once, so a
// caller who comes after it starts a fresh call instead of joining one being cancelled.
// Work nobody waits on but that must finish anyway (read-ahead) is started Detached:
// callers may join it, but their leaving never cancels it.
package flight

import (
	"context"
	"sync"
)

// Group is a set of calls keyed by K, each producing a V. The zero Group is ready to use.
type Group[K comparable, V any] struct {
	mu     sync.Mutex
	calls  map[K]*Call[K, V]
	active int // calls whose function still runs, forgotten ones included
}

// Call is one run of a function, shared by the callers who joined it.
type Call[K comparable, V any] struct {
	g        *Group[K, V] // nil for a call made by Finished
	key      K
	done     chan struct{}
	val      V
	err      error
	waiters  int  // callers that joined and have not left (guarded by g.mu)
	detached bool // runs to completion whatever its waiters do
	cancel   context.CancelFunc
}

// Do returns the result of fn for key: it joins the call running for key, or starts one,
// and waits for it. When ctx ends first, Do returns ctx.Err() and leaves the call (the
// last to leave cancels it).
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(context.Context) (V, error)) (V, error) {
	c, _ := g.Join(ctx, key, fn)
	return c.Wait(ctx)
}

// Join joins the call running for key as a waiter, or starts fn as a new one, and
// returns it without waiting; started reports whether this caller started it. The caller
// must either Wait for it or Leave it. fn runs in its own goroutine with a context that
// keeps ctx's values but not its cancellation: the call belongs to all its waiters, and
// is cancelled only when the last of them leaves.
func (g *Group[K, V]) Join(ctx context.Context, key K, fn func(context.Context) (V, error)) (c *Call[K, V], started bool) {
	return g.join(ctx, key, fn, false)
}

// Detached returns the call running for key, or starts fn as one that runs to completion
// whoever leaves it. It does not count as a waiter (nobody is blocked on it, and joining
// must not keep a call alive that its callers gave up on); the caller need not Leave it.
// Read-ahead starts its fetches this way: a read that joins one and is cancelled must not
// cancel the fetch under the stream it serves.
func (g *Group[K, V]) Detached(ctx context.Context, key K, fn func(context.Context) (V, error)) (c *Call[K, V], started bool) {
	return g.join(ctx, key, fn, true)
}

func (g *Group[K, V]) join(ctx context.Context, key K, fn func(context.Context) (V, error), detached bool) (*Call[K, V], bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.calls[key]; ok {
		if !detached {
			c.waiters++
		}
		return c, false
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &Call[K, V]{g: g, key: key, done: make(chan struct{}), detached: detached, cancel: cancel}
	if !detached {
		c.waiters = 1
	}
	if g.calls == nil {
		g.calls = make(map[K]*Call[K, V])
	}
	g.calls[key] = c
	g.active++
	go c.run(cctx, fn)
	return c, true
}

func (c *Call[K, V]) run(ctx context.Context, fn func(context.Context) (V, error)) {
	defer c.cancel()
	v, err := fn(ctx)
	g := c.g
	g.mu.Lock()
	c.val, c.err = v, err
	g.forget(c)
	g.active--
	g.mu.Unlock()
	close(c.done)
}

// forget removes c from the group if it is still the call for its key (a caller may
// already have started a new one). Called with g.mu held.
func (g *Group[K, V]) forget(c *Call[K, V]) {
	if g.calls[c.key] == c {
		delete(g.calls, c.key)
	}
}

// Running reports whether a call for key runs (one being cancelled does not count: the
// next caller starts afresh).
func (g *Group[K, V]) Running(key K) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.calls[key]
	return ok
}

// Active returns how many calls' functions still run, including cancelled calls the
// group has forgotten but whose functions have not returned yet.
func (g *Group[K, V]) Active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active
}

// Finished returns a call that is already over with v and err: for a caller that has its
// answer without running anything (a cache hit, a remembered failure) but hands out calls.
func Finished[K comparable, V any](v V, err error) *Call[K, V] {
	c := &Call[K, V]{done: make(chan struct{}), val: v, err: err, cancel: func() {}}
	close(c.done)
	return c
}

// Done is closed when the call has its result.
func (c *Call[K, V]) Done() <-chan struct{} { return c.done }

// Result returns the call's result. Call it only after Done is closed.
func (c *Call[K, V]) Result() (V, error) { return c.val, c.err }

// Wait waits for the call's result. When ctx ends first, it leaves the call and returns
// ctx.Err(). A caller who joined must not Leave after Wait returns.
func (c *Call[K, V]) Wait(ctx context.Context) (V, error) {
	select {
	case <-c.done:
		return c.val, c.err
	default:
	}
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		c.Leave()
		var zero V
		return zero, ctx.Err()
	}
}

// Leave stops waiting for the call. When the last waiter leaves a call that is not
// detached and not finished, the call's context is cancelled and the group forgets it,
// so the next caller for its key starts a new call.
func (c *Call[K, V]) Leave() {
	g := c.g
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c.waiters--
	if c.waiters == 0 && !c.detached {
		c.cancel()
		g.forget(c)
	}
}
