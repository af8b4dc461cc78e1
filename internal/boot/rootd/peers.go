package rootd

import (
	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/peer"
)

// joinLAN starts this machine's part in LAN sharing when the spec asks for it
// (nowhere.share, nowhere.peer=), before the index is loaded: the index and then the root
// are read through the neighbours first, and, when sharing, this machine's cache serves
// them in turn for as long as it runs (the node is never closed). Peers only add sources:
// when they cannot be set up the boot goes on without them (nil).
func joinLAN(spec Spec, src *sources, loc image.Location, log *bootlog.Log) *peer.Node {
	if spec.Share == "" && len(spec.Peers) == 0 {
		return nil
	}
	share := spec.Share
	if share != "" && src.cache == nil {
		log.Printf("nowhere.share: no cache to share (%s): reading from peers without sharing", spec.CacheDir)
		share = ""
	}
	n, err := peer.Start(peer.Config{
		Set: src.set.MirrorSet, Cache: src.cache, Image: loc.Name, Share: share, Discover: share != "",
		Peers: spec.Peers, Log: log.Printf,
	})
	if err != nil {
		log.Printf("LAN peers: %v: going on without them", err)
		return nil
	}
	return n
}
