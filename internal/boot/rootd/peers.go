package rootd

import (
	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/peer"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// joinLAN puts the LAN peers in front of the sources when the spec asks for them
// (nowhere.share, nowhere.peer=): the root is then read through the neighbours first,
// and, when sharing, this machine's cache serves them in turn for as long as it runs.
// Peers only add sources: when they cannot be set up the boot goes on without them.
func joinLAN(spec Spec, src *sources, ix *index.Index, log *bootlog.Log) store.Fetcher {
	if spec.Share == "" && len(spec.Peers) == 0 {
		return src.fetch
	}
	share := spec.Share
	if share != "" && src.cache == nil {
		log.Printf("nowhere.share: no cache to share (%s): reading from peers without sharing", spec.CacheDir)
		share = ""
	}
	n, err := peer.Start(peer.Config{
		Set: src.set.MirrorSet, Cache: src.cache, Index: ix, Share: share, Discover: share != "",
		Peers: spec.Peers, Log: log.Printf,
	})
	if err != nil {
		log.Printf("LAN peers: %v: going on without them", err)
		return src.fetch
	}
	return n // never closed: it serves the neighbours until power-off
}
