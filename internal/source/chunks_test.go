package source_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/peer"
	"github.com/nowhere-boot/nowhere/internal/seed"
	"github.com/nowhere-boot/nowhere/internal/source"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// A chunk only a seed holds, read through a stack with a LAN peer node (mount --share,
// --peer, --discover), lands in the disk cache: the seeds are behind the cache, as
// docs/updates.md says, not in front of it (where they were with peers).
func TestSeedChunkIsCachedWithPeers(t *testing.T) {
	for _, withPeers := range []bool{false, true} {
		ctx := context.Background()
		tmp := t.TempDir()
		plain := bytes.Repeat([]byte("seeded "), 1000)
		id := chunk.Sum(plain)
		raw := chunk.Encode(nil, plain)
		ref := chunk.Ref{ID: id, Len: uint32(len(plain)), Stored: uint32(len(raw))}
		ix := &index.Index{Size: int64(len(plain)), Entries: []index.Entry{{Len: ref.Len, Stored: ref.Stored, ID: id}}}

		mirror, err := store.CreateDir(filepath.Join(tmp, "mirror")) // holds nothing
		if err != nil {
			t.Fatal(err)
		}
		seedDir, err := store.CreateDir(filepath.Join(tmp, "seed"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := seedDir.PutChunk(ctx, id, raw); err != nil {
			t.Fatal(err)
		}
		set, err := store.NewMirrorSet([]store.Store{mirror}, store.MirrorOptions{Wait: store.Policy{Timeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		defer set.Close()
		cache, err := store.OpenDiskCache(filepath.Join(tmp, "cache"), 0, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cache.Close()
		seeds, err := seed.Open(ctx, []string{filepath.Join(tmp, "seed")}, ix, seed.Options{Encode: true})
		if err != nil {
			t.Fatal(err)
		}
		defer seeds.Close()
		src := source.Sources{Set: set, Cache: cache, Seeds: seeds}
		if withPeers {
			n, err := peer.Start(peer.Config{Set: set, Cache: cache, Image: "x"})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			n.SetIndex(ix)
			src.Peers = n
		}

		got, err := src.Chunks().Fetch(ctx, ref)
		if err != nil {
			t.Fatalf("peers=%v: %v", withPeers, err)
		}
		if !bytes.Equal(got.Plain, plain) {
			t.Fatalf("peers=%v: wrong bytes", withPeers)
		}
		if _, ok, err := cache.Dir().HasChunk(ctx, id); err != nil || !ok {
			t.Fatalf("peers=%v: the seed's chunk is not in the disk cache (ok=%v err=%v)", withPeers, ok, err)
		}
		if s := seeds.Stats(); s.Hits != 1 {
			t.Fatalf("peers=%v: seed hits = %d, want 1", withPeers, s.Hits)
		}
		// The second read is the cache's: the seed is not asked again.
		if _, err := src.Chunks().Fetch(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if s := seeds.Stats(); s.Hits != 1 {
			t.Fatalf("peers=%v: seed hits after a cached read = %d, want 1", withPeers, s.Hits)
		}
	}
}
