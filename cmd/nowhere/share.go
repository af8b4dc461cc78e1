package main

import (
	"errors"

	"github.com/spf13/pflag"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/peer"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// shareOptions are mount's LAN peer flags (docs/mirrors.md, "LAN peers"): share the
// cache with the neighbours, find them by multicast or by name, and read through them.
type shareOptions struct {
	share    string
	peers    []string
	discover bool
	group    string
	node     *peer.Node
}

func (o *shareOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.share, "share", "", "serve the --cache to LAN peers at ADDR (e.g. 192.168.1.20:7780) and announce it by multicast")
	f.StringArrayVar(&o.peers, "peer", nil, "a LAN peer sharing its cache (http://HOST:PORT), asked before the mirrors (repeatable)")
	f.BoolVar(&o.discover, "discover", false, "read through the peers that announce themselves on the LAN, without sharing (--share implies it)")
	f.StringVar(&o.group, "peer-group", peer.DefaultGroup, "multicast group and port of peer announcements")
}

func (o *shareOptions) enabled() bool {
	return o.share != "" || o.discover || len(o.peers) > 0
}

// hook makes the sources join the LAN once the mirror set and cache exist, before the
// index is loaded (the index is then loaded through the peers too).
func (o *shareOptions) hook(so *sourceOptions) {
	if !o.enabled() {
		return
	}
	so.indexVia = func(s store.Store, loc image.Location) (store.Store, error) {
		if o.share != "" && so.cache == nil {
			return nil, errors.New("--share: needs --cache DIR: the cache is what is shared")
		}
		n, err := peer.Start(peer.Config{
			Set: so.set, Cache: so.cache, Image: loc.Name, Share: o.share, Discover: o.discover,
			Peers: o.peers, Group: o.group, Log: logf,
		})
		if err != nil {
			return nil, err
		}
		o.node = n
		return n.IndexStore(s), nil
	}
}

// fetcher returns the fetcher the image reader should use: the sources with the peer
// node among them (internal/source: cache -> seeds -> peers -> mirror set), or the
// sources' own when no peer option is given.
func (o *shareOptions) fetcher(img *openedImage, so *sourceOptions) store.Fetcher {
	src := so.chunks()
	if o.node != nil {
		o.node.SetIndex(img.index)
		src.Peers = o.node
	}
	return src.Chunks()
}

func (o *shareOptions) close() {
	if o.node != nil {
		o.node.Close()
	}
}
