package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/store"
)

// wrapped is a decorator that says what it wraps, the way FindLocker expects.
type wrapped struct{ store.Store }

func (w wrapped) Unwrap() store.Store { return w.Store }

// A directory's lock is found through decorators, and is the same flock Dir.Lock takes:
// a gc holding it exclusively makes a writer wait.
func TestFindLockerThroughDecorators(t *testing.T) {
	d := newDir(t)
	if _, ok := store.FindLocker(newHTTP(t, "http://127.0.0.1:1")); ok {
		t.Error("an HTTP store has a lock")
	}
	cache, err := store.OpenDiskCache(t.TempDir(), 1<<20, t.Logf, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	l, ok := store.FindLocker(wrapped{cache.Store(d)})
	if !ok {
		t.Fatal("no lock found through a wrapper and the disk cache")
	}
	gc, ctx, err := l.LockStore(context.Background(), true, nil)
	if err != nil || ctx == nil || gc.Held() != nil {
		t.Fatalf("LockStore: %v (context %v, held %v)", err, ctx, gc.Held())
	}
	other, err := store.OpenDir(d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	waited, got := make(chan struct{}), make(chan func())
	go func() {
		unlock, err := other.Lock(false, func() { close(waited) })
		if err != nil {
			t.Error(err)
		}
		got <- unlock
	}()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("a writer did not wait for the gc's lock")
	}
	gc.Unlock()
	select {
	case unlock := <-got:
		if unlock != nil {
			unlock()
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the writer did not get the lock once the gc let go")
	}
}
