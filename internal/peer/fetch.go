package peer

import (
	"context"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Reading through the LAN. A chunk has a home among the peers that are up and this node
// (rendezvous hashing, hrw.go): the home fetches it from the mirrors, once, for everyone.
// When the home is another peer, the node asks it with store.PeerFetchHeader; the home
// serves it from its cache or fetches it first. When that fails, or the home is this
// node, the chunk comes from the mirror set, which may still ask one peer plainly (one
// that often has what it is asked for) before the mirrors.
//
// A request a neighbour makes of this node's share is answered by the same single fetch
// per chunk, and never asks another home: chains are one hop long, so two nodes that
// disagree about the peers cannot wait on each other in a circle.

type flightKey struct {
	id   chunk.ID
	home string // "" fetches directly
}

// Fetch returns a verified chunk for the node's image reader.
func (n *Node) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	h := n.home(ref.ID)
	if h == "" {
		return n.do(ctx, flightKey{ref.ID, ""}, ref, n.direct.Fetch)
	}
	return n.do(ctx, flightKey{ref.ID, h}, ref, func(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
		return n.viaHome(h).Fetch(ctx, ref)
	})
}

// home returns the peer that should fetch id, or "" when it is this node or no peer is up.
func (n *Node) home(id chunk.ID) string {
	cands := n.set.Peers()
	n.mu.Lock()
	self := n.selfURL
	n.mu.Unlock()
	if len(cands) == 0 {
		return ""
	}
	if self != "" {
		cands = append(cands, self)
	}
	h := home(id, cands)
	if h == self {
		return ""
	}
	return h
}

// viaHome is the direct path with the home peer asked first (through the cache, so what
// it sends is kept and shared on).
func (n *Node) viaHome(h string) store.Fetcher {
	f := fetcherFunc(func(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
		got, err := n.set.FetchFromPeer(ctx, h, ref, true)
		if err == nil {
			n.stats.HomeHits.Add(1)
			return got, nil
		}
		n.stats.HomeMisses.Add(1)
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		return n.set.Fetch(ctx, ref)
	})
	if n.cfg.Cache != nil {
		return n.cfg.Cache.Fetcher(f)
	}
	return f
}

type fetcherFunc func(ctx context.Context, ref chunk.Ref) (store.Fetched, error)

func (f fetcherFunc) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	return f(ctx, ref)
}

// fetching reports whether a fetch of id for this node (or a neighbour it is the home of)
// is running.
func (n *Node) fetching(id chunk.ID) bool {
	return n.flights.Running(flightKey{id, ""})
}

// do runs fn once per key however many callers want it at the same time. The fetch is
// cancelled when the last caller leaves, and the next caller starts afresh.
func (n *Node) do(ctx context.Context, key flightKey, ref chunk.Ref, fn func(context.Context, chunk.Ref) (store.Fetched, error)) (store.Fetched, error) {
	return n.flights.Do(ctx, key, func(ctx context.Context) (store.Fetched, error) { return fn(ctx, ref) })
}
