package gc_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// blockSize is the fixed chunk size of the test images: each block below is one chunk.
const blockSize = 4096

// block returns blockSize random bytes; the same seed gives the same block, hence the
// same chunk, in every image that holds it.
func block(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, blockSize)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// blockID is the chunk a block becomes.
func blockID(seed uint64) chunk.ID { return chunk.Sum(block(seed)) }

func openStore(t *testing.T) (*store.Dir, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := store.CreateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, dir
}

// packBlocks publishes a new version of image name made of the given blocks, with the
// real pack (chunks, then the versioned index, then latest), and returns its version.
func packBlocks(t *testing.T, d *store.Dir, name string, seeds ...uint64) uint64 {
	t.Helper()
	return packArchBlocks(t, d, name, "", seeds...)
}

// packArchBlocks is packBlocks for an image of architecture arch ("": any).
func packArchBlocks(t *testing.T, d *store.Dir, name, arch string, seeds ...uint64) uint64 {
	t.Helper()
	return packFinished(t, d, name, func(ix *index.Index) error { ix.Arch = arch; return nil }, seeds...)
}

// packFinished is packBlocks with finish changing the index before it is published.
func packFinished(t *testing.T, d *store.Dir, name string, finish func(*index.Index) error, seeds ...uint64) uint64 {
	t.Helper()
	var img []byte
	for _, s := range seeds {
		img = append(img, block(s)...)
	}
	spec, err := chunk.ParseSpec("fixed:4K")
	if err != nil {
		t.Fatal(err)
	}
	res, err := pack.Run(context.Background(), bytes.NewReader(img), d, pack.Options{Name: name, Spec: spec,
		Finish: finish})
	if err != nil {
		t.Fatal(err)
	}
	if res.Unique != len(slices.Compact(slices.Sorted(slices.Values(seeds)))) {
		t.Fatalf("packing %s: %d distinct chunks, want one per distinct block (%v)", name, res.Unique, seeds)
	}
	return res.Index.Version
}

// putLoose stores the chunk of a block that no index references (what a pack running
// elsewhere has written but not yet published).
func putLoose(t *testing.T, d *store.Dir, seed uint64) chunk.ID {
	t.Helper()
	id := blockID(seed)
	if _, err := d.PutChunk(context.Background(), id, chunk.Encode(nil, block(seed))); err != nil {
		t.Fatal(err)
	}
	return id
}

// setChunkTime sets a chunk file's modification time, which is all the grace period
// looks at.
func setChunkTime(t *testing.T, dir string, id chunk.ID, mod time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(dir, store.ChunkPath(id)), mod, mod); err != nil {
		t.Fatal(err)
	}
}

// storedChunks lists the chunks in the store, sorted.
func storedChunks(t *testing.T, d *store.Dir) []chunk.ID {
	t.Helper()
	var ids []chunk.ID
	if err := d.Chunks(context.Background(), func(id chunk.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return sortIDs(ids)
}

func sortIDs(ids []chunk.ID) []chunk.ID {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b chunk.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// ids returns the chunks of the given blocks, sorted and without repeats.
func ids(seeds ...uint64) []chunk.ID {
	var out []chunk.ID
	for _, s := range seeds {
		out = append(out, blockID(s))
	}
	return slices.Compact(sortIDs(out))
}
