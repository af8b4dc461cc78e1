package store

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// LAN peers: other clients' chunk caches (internal/peer serves and finds them). A peer is
// untrusted like any mirror, so its chunks are verified and a peer that serves a corrupt
// one is demoted hard. What differs is what a miss means: a peer holds only what its
// machine has read, so "404 not found" is a normal answer, not a failure. The set keeps,
// per peer, a moving average of how often it had the chunk asked for, and asks a peer
// before the mirrors only when that pays on average:
//
//	hit ratio × (expected time from the best mirror) > expected time from the peer
//
// On a LAN (a peer answers in well under a millisecond, a mirror in tens) a peer is asked
// even when it has one chunk in a hundred; a peer that keeps missing falls below that and
// is left alone until its ratio is rebuilt by the chunks it serves when asked directly
// (FetchFromPeer). At most one peer is asked per chunk before the mirrors, so a fleet of
// empty peers costs each read one LAN round trip at most. Peers never serve metadata
// files (indexes, pointers, the mirror list): File asks mirrors only.

const (
	defaultMaxPeers    = 256
	defaultPeerTimeout = 10 * time.Second
	peerHitPrior       = 0.5 // hit ratio assumed for a new peer
	// PeerFetchHeader asks a peer to fetch a chunk it lacks from its own sources before
	// answering (internal/peer: only chunks of the image it reads, and never forwarded).
	PeerFetchHeader = "Nowhere-Peer-Fetch"
)

// errPeerMiss marks a peer's "I do not have it" (404, or 503 busy).
var errPeerMiss = errors.New("peer does not have the chunk")

// PeerStore is a store that can be asked, per request, to fetch a chunk it lacks from its
// own sources before answering: a peer's cache. HTTP implements it with PeerFetchHeader.
type PeerStore interface {
	Store
	PeerChunk(ctx context.Context, ref chunk.Ref, fetch bool) ([]byte, error)
}

func isPeerMiss(err error) bool {
	var se *StatusError
	return errors.Is(err, ErrNotFound) || errors.Is(err, errPeerMiss) ||
		(errors.As(err, &se) && se.Code == http.StatusServiceUnavailable)
}

func (m *mirror) kind() string {
	if m.peer {
		return "peer"
	}
	return "mirror"
}

// peerHitMemory is about how many recent answers a peer's hit ratio reflects: no fewer
// than a read-ahead burst (image.Reader keeps up to 32 fetches in flight).
const peerHitMemory = 32

// sawChunk records whether m had a chunk it was asked for (peers' hit ratio): the mean
// of the answers so far, the prior counting as one, until there are peerHitMemory of
// them, then a moving average over about as many. The requests of a read-ahead burst go
// out together and come back in whatever order the machines schedule them; a memory
// shorter than a burst let one burst's misses, booked last, sink the ratio of a peer
// holding half the chunks to a few per cent, and the set stopped asking it.
func (m *mirror) sawChunk(hit bool) {
	if !m.peer {
		return
	}
	v := 0.0
	if hit {
		v = 1
	}
	m.answers++
	m.hit += (v - m.hit) / float64(min(m.answers+1, peerHitMemory))
}

// missed books a peer's "not here", answered in d while `shared` requests were in flight
// on it: its ratio drops, the answer is a latency sample, and it stays up.
func (s *MirrorSet) missed(m *mirror, d time.Duration, shared int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sawChunk(false)
	m.est.sampleLatency(d.Seconds(), shared)
}

// get fetches ref's stored bytes from m; through asks a peer to fetch what it lacks.
func (s *MirrorSet) get(ctx context.Context, m *mirror, ref chunk.Ref, through bool) ([]byte, error) {
	if ps, ok := m.store.(PeerStore); ok && m.peer {
		return ps.PeerChunk(ctx, ref, through)
	}
	return m.store.Chunk(ctx, ref)
}

// AddPeer puts a LAN peer in the set. It reports false when the set has it already or
// holds MaxPeers peers (announcements come from an untrusted LAN: the list is bounded;
// the caller may RemovePeer one that went quiet to make room).
func (s *MirrorSet) AddPeer(st Store) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := st.String()
	peers := 0
	for _, m := range s.mirrors {
		if m.name == name {
			return false
		}
		if m.peer {
			peers++
		}
	}
	if peers >= s.opt.MaxPeers {
		return false
	}
	m := &mirror{store: st, name: name, peer: true, hit: peerHitPrior}
	m.est.assumed = 0.002 // a LAN neighbour, until measured
	s.mirrors = append(s.mirrors, m)
	return true
}

// RemovePeer drops a peer (one that stopped announcing itself). Mirrors stay.
func (s *MirrorSet) RemovePeer(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.mirrors, func(m *mirror) bool { return m.peer && m.name == name })
	if i < 0 {
		return false
	}
	s.mirrors = slices.Delete(s.mirrors, i, i+1)
	return true
}

// Peers returns the names (base URLs) of the peers that are up, in the set's order.
func (s *MirrorSet) Peers() []string {
	var out []string
	for _, m := range s.snapshot() {
		if !m.peer {
			continue
		}
		m.mu.Lock()
		up := m.state == stateUp
		m.mu.Unlock()
		if up {
			out = append(out, m.name)
		}
	}
	return out
}

// FetchFromPeer asks one peer for ref, with fetch asking it to fetch the chunk from its
// own sources if it lacks it, and books the outcome like any request (verified; a
// corrupt chunk demotes the peer hard). A miss is an error wrapping ErrNotFound.
func (s *MirrorSet) FetchFromPeer(ctx context.Context, name string, ref chunk.Ref, fetch bool) (Fetched, error) {
	// One snapshot for both finding and taking the peer: an index into one snapshot
	// names another member (or none) in the next once AddPeer or RemovePeer ran between.
	members := s.snapshot()
	i := slices.IndexFunc(members, func(m *mirror) bool { return m.peer && m.name == name })
	if i < 0 {
		return Fetched{}, errors.New(name + ": not a peer of this set")
	}
	m := members[i]
	f, err := s.attempt(ctx, m, ref, fetch)
	if err == nil {
		s.remember(ref)
	}
	return f, err
}

// choosePeer returns the peer to ask for a chunk of size bytes before the mirrors, or
// nil: the up peer, not tried yet, with the largest expected saving (hit ratio × time
// from the best mirror − time from the idle peer), if any saves time. nil too once a
// peer was tried in this round.
func (s *MirrorSet) choosePeer(size int, tried []*mirror) *mirror {
	if slices.ContainsFunc(tried, func(m *mirror) bool { return m.peer }) {
		return nil
	}
	var best *mirror
	bestMirror, bestSaving := time.Duration(-1), 0.0
	type peerCand struct {
		m    *mirror
		hit  float64
		cost time.Duration
	}
	var peers []peerCand
	mirrorMeasured := false
	for _, m := range s.snapshot() {
		m.mu.Lock()
		up := m.state == stateUp
		if !m.peer && up && m.est.throughput > 0 {
			mirrorMeasured = true
		}
		cost := m.est.expectedWith(size, m.inflight)
		if m.peer {
			// A peer's queue is not held against it: it is asked to take load off the
			// mirrors, and a LAN peer's queue drains far faster than a mirror's link.
			cost = m.est.expected(size)
		}
		hit := m.hit
		m.mu.Unlock()
		if !up {
			continue
		}
		if !m.peer {
			if bestMirror < 0 || cost < bestMirror {
				bestMirror = cost
			}
			continue
		}
		peers = append(peers, peerCand{m, hit, cost})
	}
	if bestMirror < 0 {
		// Every mirror is down: a peer is worth a try whatever its ratio.
		bestMirror = time.Duration(1 << 62)
	}
	if !mirrorMeasured {
		// Until a mirror has shown its throughput on a real chunk, its estimate is a
		// guess; the LAN is asked first, which is what peers are for.
		for _, p := range peers {
			if p.hit >= peerHitPrior/4 && (best == nil || p.hit > bestSaving) {
				best, bestSaving = p.m, p.hit
			}
		}
		return best
	}
	for _, p := range peers {
		saving := p.hit*bestMirror.Seconds() - p.cost.Seconds()
		if saving > bestSaving {
			best, bestSaving = p.m, saving
		}
	}
	return best
}

// peerHedgeMin is the least a request to a peer runs before it is hedged to a mirror: a
// peer serves from its cache in milliseconds, and a hedge costs the mirrors what the
// peer was asked to save them, so only a peer in real trouble is hedged.
const peerHedgeMin = 100 * time.Millisecond
