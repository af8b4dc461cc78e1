// Package source composes the read stack of an image: where its chunks come from and in
// which order, and the layers above that every reader of an image shares (a bound on
// fetches in flight, the boot profile's prefetcher, the image reader, the recording of
// first reads). The CLI's verbs and the boot daemon build their stacks here, so the
// order is written down once (docs/architecture.md, "The data path"):
//
//	recording -> image reader -> prefetcher -> limit -> disk cache -> seeds -> LAN peers -> mirror set
//
// The disk cache is outermost of the sources because it is the cheapest answer and the
// only one that persists: whatever the sources behind it supply (a seed's chunk too,
// docs/updates.md) is kept for the next mount or boot. Seeds come next: what local data
// holds is never fetched from anyone, neighbour or mirror. Peers are asked before the
// mirrors because they are on the LAN (docs/mirrors.md, "LAN peers").
package source

import (
	"github.com/nowhere-boot/nowhere/internal/peer"
	"github.com/nowhere-boot/nowhere/internal/seed"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Sources are the opened chunk sources of one image. Set is required; the others are
// nil when not in use.
type Sources struct {
	Set   *store.MirrorSet
	Cache *store.DiskCache
	// Seeds must have been opened with seed.Options.Encode when Cache is set: the cache
	// keeps a chunk's compressed bytes.
	Seeds *seed.Set
	// Peers is the LAN peer node; it was started over Set and Cache (peer.Config), so
	// it reads through the cache itself.
	Peers *peer.Node
}

// Chunks returns the verified chunk source in the package's order: disk cache -> seeds
// -> LAN peers -> mirror set, each layer present only when configured.
func (s Sources) Chunks() store.Fetcher {
	var behind store.Fetcher = s.Set
	if s.Peers != nil {
		behind = s.Peers
	}
	switch {
	case s.Cache != nil && s.Peers != nil && s.Seeds != nil:
		// The node looks the cache up and keeps what it fetches on its own; the cache's
		// front layer keeps what the seeds supply without a second lookup.
		return s.Cache.Front(s.Seeds.Fetcher(store.NotHeld), s.Peers)
	case s.Cache != nil && s.Peers != nil:
		return s.Peers
	}
	if s.Seeds != nil {
		behind = s.Seeds.Fetcher(behind)
	}
	if s.Cache != nil {
		behind = s.Cache.Fetcher(behind)
	}
	return behind
}

// The layers Chunks stacks are Fetchers; the peer node stands in for the mirror set.
var (
	_ store.Fetcher = (*store.MirrorSet)(nil)
	_ store.Fetcher = (*peer.Node)(nil)
)
