package gc_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/gc"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// TestKeepIsPerImage: two images with several versions each, one chunk shared across
// images (in an old version of one and the latest of the other). --keep counts versions
// per image: keep 2 drops only os@1; keep 1 keeps the latest of each image and every
// chunk they reference (the shared one too), and removes exactly the chunks that only
// older versions used. Every kept version still reads back whole.
func TestKeepIsPerImage(t *testing.T) {
	ctx := context.Background()
	d, _ := openStore(t)
	// Blocks 1-9 are distinct chunks; 9 is in os@1 and in tools@2.
	images := []struct {
		name   string
		blocks []uint64
	}{
		{"os", []uint64{1, 2, 9}},
		{"os", []uint64{1, 3}},
		{"os", []uint64{1, 4}},
		{"tools", []uint64{5, 6}},
		{"tools", []uint64{5, 9, 7}},
	}
	for _, im := range images {
		packBlocks(t, d, im.name, im.blocks...)
	}
	all := ids(1, 2, 3, 4, 5, 6, 7, 9)
	if got := storedChunks(t, d); !slices.Equal(got, all) {
		t.Fatalf("after packing the store holds %d chunks, want %d", len(got), len(all))
	}

	res, err := gc.Run(ctx, d, gc.Options{Keep: 2, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.RemovedVersions, []string{"os@1"}) || !slices.Equal(sortIDs(res.RemovedChunks), ids(2)) {
		t.Errorf("dry run --keep 2 would remove versions %v and chunks %v; want os@1 and only block 2's chunk %v",
			res.RemovedVersions, res.RemovedChunks, ids(2))
	}
	res, err = gc.Run(ctx, d, gc.Options{Keep: 1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.RemovedVersions, []string{"os@1", "os@2", "tools@1"}) || !slices.Equal(sortIDs(res.RemovedChunks), ids(2, 3, 6)) {
		t.Errorf("dry run --keep 1 would remove versions %v and chunks %v; want os@1 os@2 tools@1 and %v",
			res.RemovedVersions, res.RemovedChunks, ids(2, 3, 6))
	}
	if got := storedChunks(t, d); !slices.Equal(got, all) {
		t.Fatal("the dry runs removed chunks")
	}
	for _, name := range []string{"os", "tools"} {
		if vs, _ := catalog.Listed(ctx, d, name); len(vs) < 2 {
			t.Fatalf("the dry runs removed versions of %s: %v left", name, vs)
		}
	}

	res, err = gc.Run(ctx, d, gc.Options{Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.KeptVersions, []string{"os@3", "tools@2"}) || !slices.Equal(res.RemovedVersions, []string{"os@1", "os@2", "tools@1"}) {
		t.Errorf("gc --keep 1 kept %v and removed %v; want os@3 tools@2, and os@1 os@2 tools@1", res.KeptVersions, res.RemovedVersions)
	}
	if got, want := storedChunks(t, d), ids(1, 4, 5, 7, 9); !slices.Equal(got, want) {
		t.Errorf("after gc --keep 1 the store holds %v, want the chunks of os@3 and tools@2 %v", got, want)
	}
	for name, want := range map[string]uint64{"os": 3, "tools": 2} {
		if vs, err := catalog.Listed(ctx, d, name); err != nil || !slices.Equal(vs, []uint64{want}) {
			t.Errorf("%s: versions %v left (%v), want only %d", name, vs, err, want)
		}
		readsBack(t, d, name, want)
	}
}

// readsBack checks that every chunk of a version is stored and decodes to what the
// index says.
func readsBack(t *testing.T, d *store.Dir, name string, v uint64) {
	t.Helper()
	ctx := context.Background()
	b, err := d.File(ctx, store.IndexPath(name, v), index.MaxBody)
	if err != nil {
		t.Fatalf("%s@%d: %v", name, v, err)
	}
	ix, err := index.Decode(b)
	if err != nil {
		t.Fatalf("%s@%d: %v", name, v, err)
	}
	for _, e := range ix.Entries {
		if e.Zero {
			continue
		}
		raw, err := d.Chunk(ctx, chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored})
		if err == nil {
			_, err = chunk.Decode(nil, e.ID, int(e.Len), raw)
		}
		if err != nil {
			t.Errorf("%s@%d: chunk at %d: %v", name, v, e.Off, err)
		}
	}
}

// TestKeepIsPerArchitecture: an image published for amd64 (versions 1, 3, 4) and arm64
// (version 2). --keep 1 keeps the newest version of each architecture (4 and 2), not just
// the newest version number: frequent amd64 updates never collect what arm64 machines boot.
func TestKeepIsPerArchitecture(t *testing.T) {
	ctx := context.Background()
	d, _ := openStore(t)
	for i, arch := range []string{"amd64", "arm64", "amd64", "amd64"} {
		packArchBlocks(t, d, "os", arch, uint64(10+i))
	}
	res, err := gc.Run(ctx, d, gc.Options{Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.KeptVersions, []string{"os@2", "os@4"}) || !slices.Equal(res.RemovedVersions, []string{"os@1", "os@3"}) {
		t.Errorf("gc --keep 1 kept %v and removed %v; want os@2 (arm64) and os@4 (amd64) kept, os@1 and os@3 removed", res.KeptVersions, res.RemovedVersions)
	}
	if vs, err := catalog.Listed(ctx, d, "os"); err != nil || !slices.Equal(vs, []uint64{2, 4}) {
		t.Errorf("versions left: %v (%v), want 2 and 4", vs, err)
	}
}

// TestKeepWithin: --keep-within keeps every version that was current within the window,
// published or replaced that recently (a machine that booted it may still run it), and
// says which versions only the window keeps. os@1 is published on day 0, os@2 on day 20,
// os@3 on day 21; with --keep 1 and a 7-day window, on day 25 all three stay (os@1 was
// replaced on day 20), on day 30 only os@3.
func TestKeepWithin(t *testing.T) {
	ctx := context.Background()
	d, _ := openStore(t)
	day0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, day := range []int{0, 20, 21} {
		created := day0.AddDate(0, 0, day)
		packFinished(t, d, "os", func(ix *index.Index) error { ix.Created = created; return nil }, uint64(20+i))
	}
	at := func(day int) func() time.Time { return func() time.Time { return day0.AddDate(0, 0, day) } }
	res, err := gc.Run(ctx, d, gc.Options{Keep: 1, KeepWithin: 7 * 24 * time.Hour, DryRun: true, Now: at(25)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RemovedVersions) != 0 || !slices.Equal(res.WindowVersions, []string{"os@1", "os@2"}) {
		t.Errorf("day 25: removes %v, window keeps %v; want nothing removed, os@1 and os@2 kept by the window", res.RemovedVersions, res.WindowVersions)
	}
	res, err = gc.Run(ctx, d, gc.Options{Keep: 1, KeepWithin: 7 * 24 * time.Hour, Now: at(30)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.RemovedVersions, []string{"os@1", "os@2"}) || len(res.WindowVersions) != 0 || !slices.Equal(res.KeptVersions, []string{"os@3"}) {
		t.Errorf("day 30: kept %v, removed %v, window %v; want os@3 kept, os@1 and os@2 removed", res.KeptVersions, res.RemovedVersions, res.WindowVersions)
	}
}
