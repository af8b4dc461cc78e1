package gc_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/gc"
)

// TestStopsWhenTheLockIsLost: gc asks Held before it removes or writes anything; once the
// store's lock is lost (an S3 lock whose marker could not be rewritten), it stops with
// that error, having removed nothing it decided on under the lock.
func TestStopsWhenTheLockIsLost(t *testing.T) {
	ctx := context.Background()
	d, _ := openStore(t)
	packBlocks(t, d, "os", 1, 2)
	packBlocks(t, d, "os", 3)
	all := storedChunks(t, d)
	lost := errors.New("lost the lock")
	_, err := gc.Run(ctx, d, gc.Options{Keep: 1, Held: func() error { return lost }})
	if !errors.Is(err, lost) {
		t.Fatalf("gc with a lost lock: %v, want the lock's error", err)
	}
	if got := storedChunks(t, d); !slices.Equal(got, all) {
		t.Errorf("gc removed %d chunks after losing the lock", len(all)-len(got))
	}
	if vs, _ := catalog.Listed(ctx, d, "os"); !slices.Equal(vs, []uint64{1, 2}) {
		t.Errorf("gc removed versions after losing the lock: %v left", vs)
	}

	// Held: gc goes on, and asked it before each of its writes and removals.
	asked := 0
	res, err := gc.Run(ctx, d, gc.Options{Keep: 1, Held: func() error { asked++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 2 || asked < 1+1+res.Removed+1 {
		t.Errorf("gc removed %d chunks asking Held %d times; want 2 chunks, and Held asked before the versions file, the index, each chunk and the names file", res.Removed, asked)
	}
}
