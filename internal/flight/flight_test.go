package flight

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blocker is a call that counts its runs and waits to be released or cancelled.
type blocker struct {
	runs     atomic.Int32
	started  chan struct{} // one send per run
	release  chan struct{}
	canceled chan struct{} // one send per run whose context ended
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 16), release: make(chan struct{}), canceled: make(chan struct{}, 16)}
}

func (b *blocker) fn(v int, err error) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		b.runs.Add(1)
		b.started <- struct{}{}
		select {
		case <-b.release:
			return v, err
		case <-ctx.Done():
			b.canceled <- struct{}{}
			return 0, ctx.Err()
		}
	}
}

func recv(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func noRecv(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
		t.Fatalf("unexpected %s", what)
	case <-time.After(50 * time.Millisecond):
	}
}

// checkNoLeak fails when goroutines started during the test are still running at its end.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func TestConcurrentCallersShareOneCall(t *testing.T) {
	checkNoLeak(t)
	var g Group[string, int]
	b := newBlocker()
	const n = 20
	var wg sync.WaitGroup
	results := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := g.Do(context.Background(), "k", b.fn(42, nil))
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}()
	}
	recv(t, b.started, "the call")
	// Every caller is in before the call ends: wait until all have joined.
	for {
		g.mu.Lock()
		w := g.calls["k"].waiters
		g.mu.Unlock()
		if w == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(b.release)
	wg.Wait()
	if r := b.runs.Load(); r != 1 {
		t.Fatalf("%d runs, want 1", r)
	}
	for i, v := range results {
		if v != 42 {
			t.Fatalf("caller %d got %d", i, v)
		}
	}
	if g.Running("k") {
		t.Fatal("a finished call is still running")
	}
}

func TestDistinctKeysRunApart(t *testing.T) {
	var g Group[int, int]
	var runs atomic.Int32
	for k := range 3 {
		v, err := g.Do(context.Background(), k, func(context.Context) (int, error) { runs.Add(1); return k * 10, nil })
		if err != nil || v != k*10 {
			t.Fatalf("key %d: %d, %v", k, v, err)
		}
	}
	if runs.Load() != 3 {
		t.Fatalf("%d runs, want 3", runs.Load())
	}
}

func TestErrorIsShared(t *testing.T) {
	var g Group[string, int]
	b := newBlocker()
	boom := errors.New("boom")
	c1, started1 := g.Join(context.Background(), "k", b.fn(0, boom))
	c2, started2 := g.Join(context.Background(), "k", b.fn(0, errors.New("not run")))
	if !started1 || started2 || c1 != c2 {
		t.Fatalf("started %v %v, same call %v", started1, started2, c1 == c2)
	}
	recv(t, b.started, "the call")
	close(b.release)
	for _, c := range []*Call[string, int]{c1, c2} {
		if _, err := c.Wait(context.Background()); !errors.Is(err, boom) {
			t.Fatalf("err %v, want boom", err)
		}
	}
	// An error is not remembered: the next caller runs the call again.
	if v, err := g.Do(context.Background(), "k", func(context.Context) (int, error) { return 7, nil }); err != nil || v != 7 {
		t.Fatalf("after an error: %d, %v", v, err)
	}
}

func TestLastWaiterLeavingCancels(t *testing.T) {
	checkNoLeak(t)
	var g Group[string, int]
	b := newBlocker()
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := g.Do(ctx1, "k", b.fn(1, nil)); errs <- err }()
	recv(t, b.started, "the call")
	go func() { _, err := g.Do(ctx2, "k", b.fn(1, nil)); errs <- err }()
	waitWaiters(t, &g, "k", 2)

	cancel1()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v", err)
	}
	noRecv(t, b.canceled, "cancellation while a waiter remains")
	cancel2()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("second caller: %v", err)
	}
	recv(t, b.canceled, "the call's cancellation after its last waiter left")
	if g.Running("k") {
		t.Fatal("a call whose waiters all left is still joinable")
	}
	for g.Active() != 0 { // the cancelled function returns soon after
		time.Sleep(time.Millisecond)
	}
}

func TestJoinerAfterCancellationStartsAfresh(t *testing.T) {
	checkNoLeak(t)
	var g Group[string, int]
	// The first call ignores its cancellation for a while, as a fetch stuck in a read
	// might: a caller who comes meanwhile must not join it and get its context.Canceled.
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	c, _ := g.Join(context.Background(), "k", func(context.Context) (int, error) {
		<-release
		return 0, context.Canceled
	})
	cancel()
	if _, err := c.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v", err)
	}
	late, lateCancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer lateCancel()
	v, err := g.Do(late, "k", func(context.Context) (int, error) { return 2, nil })
	if err != nil || v != 2 {
		t.Fatalf("late joiner: %d, %v (joined the cancelled call)", v, err)
	}
	// The old call ending now must not forget the new one's key.
	c3, _ := g.Join(context.Background(), "k", newBlocker().fn(3, nil))
	if a := g.Active(); a != 2 {
		t.Fatalf("%d active calls, want 2 (the forgotten one still runs)", a)
	}
	close(release)
	<-c.Done()
	if !g.Running("k") {
		t.Fatal("the cancelled call's end forgot the new call")
	}
	c3.Leave()
}

func TestDetachedRunsToCompletion(t *testing.T) {
	checkNoLeak(t)
	var g Group[string, int]
	b := newBlocker()
	d, started := g.Detached(context.Background(), "k", b.fn(5, nil))
	if !started {
		t.Fatal("detached call not started")
	}
	recv(t, b.started, "the detached call")
	// A read joins the read-ahead fetch and gives up on it.
	ctx, cancel := context.WithCancel(context.Background())
	c, started := g.Join(ctx, "k", b.fn(0, errors.New("not run")))
	if started || c != d {
		t.Fatal("a joiner did not join the detached call")
	}
	cancel()
	if _, err := c.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v", err)
	}
	noRecv(t, b.canceled, "cancellation of a detached call")
	if !g.Running("k") {
		t.Fatal("a detached call was forgotten when its waiter left")
	}
	close(b.release)
	<-d.Done()
	if v, err := d.Result(); v != 5 || err != nil {
		t.Fatalf("detached result %d, %v", v, err)
	}
	if b.runs.Load() != 1 {
		t.Fatalf("%d runs", b.runs.Load())
	}
}

func TestDetachedJoinsWithoutCounting(t *testing.T) {
	checkNoLeak(t)
	var g Group[string, int]
	b := newBlocker()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() { _, err := g.Do(ctx, "k", b.fn(1, nil)); errs <- err }()
	recv(t, b.started, "the call")
	// Read-ahead finds the read's fetch running: it shares it, but does not keep it alive.
	d, started := g.Detached(context.Background(), "k", b.fn(0, errors.New("not run")))
	if started {
		t.Fatal("detached join started a second call")
	}
	cancel()
	<-errs
	recv(t, b.canceled, "cancellation of a call only a detached joiner shares")
	<-d.Done()
}

func TestCallContextKeepsValues(t *testing.T) {
	type key struct{}
	var g Group[string, string]
	ctx := context.WithValue(context.Background(), key{}, "v")
	got, _ := g.Do(ctx, "k", func(ctx context.Context) (string, error) {
		s, _ := ctx.Value(key{}).(string)
		return s, nil
	})
	if got != "v" {
		t.Fatalf("value %q", got)
	}
}

func TestFinished(t *testing.T) {
	boom := errors.New("boom")
	c := Finished[string, int](3, boom)
	v, err := c.Wait(context.Background())
	if v != 3 || err != boom {
		t.Fatalf("%d, %v", v, err)
	}
	c.Leave() // harmless
}

func TestLeaveAfterFinishKeepsNewCall(t *testing.T) {
	var g Group[string, int]
	c, _ := g.Join(context.Background(), "k", func(context.Context) (int, error) { return 1, nil })
	<-c.Done()
	b := newBlocker()
	c2, started := g.Join(context.Background(), "k", b.fn(2, nil))
	if !started {
		t.Fatal("a finished call was joined")
	}
	c.Leave() // a failed read lets go of calls it no longer waits for, finished or not
	if !g.Running("k") {
		t.Fatal("leaving a finished call forgot the new one")
	}
	close(b.release)
	if v, _ := c2.Wait(context.Background()); v != 2 {
		t.Fatalf("got %d", v)
	}
}

func waitWaiters(t *testing.T, g *Group[string, int], key string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		c := g.calls[key]
		w := 0
		if c != nil {
			w = c.waiters
		}
		g.mu.Unlock()
		if w == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", w, n)
		}
		time.Sleep(time.Millisecond)
	}
}
