package gc_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/gc"
)

// TestGracePeriod: the grace period is what protects, on a store without a lock (S3, or
// a writer on another host), the chunks a pack has written but not yet published. With a
// clock fixed by the test and chunk times set by it: an unreferenced chunk modified within
// the grace period stays, one older goes (exactly at the limit counts as older), a
// referenced chunk stays however old it is; a dry run removes nothing but lists exactly
// what would go; and once the clock moves past the young chunk's grace period, it goes
// too.
func TestGracePeriod(t *testing.T) {
	ctx := context.Background()
	d, dir := openStore(t)
	packBlocks(t, d, "os", 1, 2, 3)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	const grace = time.Hour
	for _, id := range ids(1, 2, 3) {
		setChunkTime(t, dir, id, now.Add(-30*24*time.Hour)) // referenced, and very old
	}
	young := putLoose(t, d, 10)
	setChunkTime(t, dir, young, now.Add(-10*time.Minute))
	justYoung := putLoose(t, d, 11)
	setChunkTime(t, dir, justYoung, now.Add(-grace+time.Second))
	atLimit := putLoose(t, d, 12)
	setChunkTime(t, dir, atLimit, now.Add(-grace))
	old := putLoose(t, d, 13)
	setChunkTime(t, dir, old, now.Add(-2*time.Hour))
	all := storedChunks(t, d)
	clock := func() time.Time { return now }

	res, err := gc.Run(ctx, d, gc.Options{Keep: 1, Grace: grace, DryRun: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	wantGone := sortIDs([]chunk.ID{atLimit, old})
	if got := sortIDs(res.RemovedChunks); !slices.Equal(got, wantGone) {
		t.Errorf("dry run lists %v as going, want the old and the at-the-limit chunks %v", got, wantGone)
	}
	if res.Removed != 2 || res.Young != 2 || res.Referenced != 3 || len(res.RemovedVersions) != 0 {
		t.Errorf("dry run: %d to remove, %d young, %d referenced, versions %v; want 2, 2, 3, none",
			res.Removed, res.Young, res.Referenced, res.RemovedVersions)
	}
	if got := storedChunks(t, d); !slices.Equal(got, all) {
		t.Fatalf("the dry run removed chunks: %d left of %d", len(got), len(all))
	}

	res, err = gc.Run(ctx, d, gc.Options{Keep: 1, Grace: grace, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if got := sortIDs(res.RemovedChunks); !slices.Equal(got, wantGone) {
		t.Errorf("gc reports removing %v, want %v", got, wantGone)
	}
	want := sortIDs(append(ids(1, 2, 3), young, justYoung))
	if got := storedChunks(t, d); !slices.Equal(got, want) {
		t.Errorf("after gc the store holds %v, want the 3 referenced and the 2 young chunks %v", got, want)
	}

	// An hour later the young chunks are old: nothing published them, so they go; the
	// referenced ones stay.
	later := func() time.Time { return now.Add(grace) }
	res, err = gc.Run(ctx, d, gc.Options{Keep: 1, Grace: grace, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sortIDs(res.RemovedChunks), sortIDs([]chunk.ID{young, justYoung}); !slices.Equal(got, want) || res.Young != 0 {
		t.Errorf("an hour later gc removes %v (%d young kept), want %v", got, res.Young, want)
	}
	if got := storedChunks(t, d); !slices.Equal(got, ids(1, 2, 3)) {
		t.Errorf("an hour later the store holds %v, want only the referenced %v", got, ids(1, 2, 3))
	}
}
