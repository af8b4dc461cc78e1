package peer

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/flight"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Config says how a client takes part in its LAN's sharing.
type Config struct {
	// Set is the client's mirror set: peers join it as sources.
	Set *store.MirrorSet
	// Cache is the client's disk cache: what it shares, and where chunks fetched for
	// neighbours land (nil: the client reads from peers but shares nothing).
	Cache *store.DiskCache
	// Image is the name of the image the client reads (announced; a neighbour may ask it
	// to fetch only this image's index and chunks). The index itself comes later
	// (SetIndex): the node helps load it (IndexStore).
	Image string
	// Share is the address to serve the cache on (host:port; "" shares nothing). With a
	// specific IP the client also knows its own URL at once (needed with Peers lists).
	Share string
	// Discover listens for announcements without sharing (sharing implies it).
	Discover bool
	// Peers are base URLs of peers named by the user (never expire).
	Peers []string
	// Group is the multicast group and port of announcements (default DefaultGroup).
	Group string
	// Interval between announcements (default 10 s).
	Interval time.Duration
	// Settle is how long Start waits for announcements of the peers already on the LAN
	// (default 500 ms with discovery, else 0).
	Settle time.Duration
	// MaxServing bounds the requests the share serves at once (default 32); beyond it
	// a request waits up to QueueWait (default 2 s) for its turn, then gets 503 and its
	// client asks the mirrors.
	MaxServing int
	QueueWait  time.Duration
	Log        func(format string, args ...any)
}

// DefaultGroup is an organisation-local multicast group (RFC 2365); announcements are
// sent with TTL 1, so they never leave the link.
const DefaultGroup = "239.255.77.77:7788"

// Node is a client's part in LAN sharing: a store.Fetcher for its image reader that asks
// each chunk's home peer first, a server for its cache, and the announcements.
type Node struct {
	cfg      Config
	set      *store.MirrorSet
	refs     atomic.Pointer[map[chunk.ID]chunk.Ref] // the image's chunks, once SetIndex is called
	indexSet chan struct{}                          // closed by the first SetIndex
	filesSet chan struct{}                          // closed by the first IndexStore
	direct   store.Fetcher                          // cache, then the mirror set (plain peer requests and mirrors)
	peerHTTP store.HTTPOptions
	files    atomic.Pointer[store.Store] // where the index comes from when fetched for a neighbour
	index    atomic.Pointer[indexCopy]   // the last index this node fetched as its home (index.go)

	mu      sync.Mutex
	flights flight.Group[flightKey, store.Fetched] // one fetch per chunk and home (fetch.go)
	self    map[string]bool                        // our own base URLs, as neighbours see them
	selfURL string                                 // the one used for home selection
	seen    map[string]time.Time                   // discovered peers: last announcement
	named   map[string]bool                        // peers from Config.Peers

	share *share
	disc  *discovery
	stats Stats
}

// Stats count what a node did for its image reader and for its neighbours.
type Stats struct {
	HomeHits, HomeMisses atomic.Int64 // chunks asked of their home peer: got, did not get
	Served, ServedBytes  atomic.Int64 // chunks served to neighbours
	FetchedFor           atomic.Int64 // chunks fetched from the mirrors for a neighbour
	Busy                 atomic.Int64 // requests refused as too many at once
	IndexFromPeer        atomic.Int64 // indexes loaded from a peer
}

// Start joins the LAN: it adds the named peers to the set, starts the cache server and
// the announcements as configured, and waits Settle for neighbours to be heard.
func Start(cfg Config) (*Node, error) {
	if cfg.Set == nil || index.ValidName(cfg.Image) != nil {
		return nil, errors.New("peer: no mirror set or image name")
	}
	if cfg.Share != "" && cfg.Cache == nil {
		return nil, errors.New("sharing needs a cache directory (--cache) to share")
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.MaxServing <= 0 {
		cfg.MaxServing = 32
	}
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = 2 * time.Second
	}
	discover := cfg.Share != "" || cfg.Discover
	if cfg.Settle == 0 && discover {
		cfg.Settle = 500 * time.Millisecond
	}
	n := &Node{
		cfg: cfg, set: cfg.Set,
		self: map[string]bool{}, seen: map[string]time.Time{}, named: map[string]bool{},
		indexSet: make(chan struct{}), filesSet: make(chan struct{}),
	}
	n.direct = cfg.Set
	if cfg.Cache != nil {
		n.direct = cfg.Cache.Fetcher(cfg.Set)
	}
	// Peers are on the LAN: never through an HTTP proxy meant for the mirrors.
	t := store.NewTransport()
	t.Proxy = nil
	n.peerHTTP = store.HTTPOptions{Client: &http.Client{Transport: t}}
	if cfg.Share != "" {
		sh, err := n.serve(cfg.Share)
		if err != nil {
			return nil, err
		}
		n.share = sh
	}
	for _, u := range cfg.Peers {
		if err := n.addPeer(u, true); err != nil {
			n.Close()
			return nil, fmt.Errorf("--peer %s: %w", u, err)
		}
	}
	if discover {
		d, err := n.discover()
		if err != nil {
			n.Close()
			return nil, err
		}
		n.disc = d
		time.Sleep(cfg.Settle)
	}
	return n, nil
}

// SetIndex tells the node the image's index, once loaded and verified: neighbours may
// then ask it to fetch the image's chunks.
func (n *Node) SetIndex(ix *index.Index) {
	refs := make(map[chunk.ID]chunk.Ref, len(ix.Entries))
	for _, e := range ix.Entries {
		if !e.Zero {
			refs[e.ID] = chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored}
		}
	}
	if n.refs.Swap(&refs) == nil {
		close(n.indexSet)
	}
}

func (n *Node) ref(id chunk.ID) (chunk.Ref, bool) {
	m := n.refs.Load()
	if m == nil {
		return chunk.Ref{}, false
	}
	r, ok := (*m)[id]
	return r, ok
}

// URL returns the base URL the node serves its cache at ("" when not sharing), as far as
// it knows (a wildcard listen address learns it from its own announcements).
func (n *Node) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.selfURL
}

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.stats }

// Close stops serving and announcing.
func (n *Node) Close() error {
	if n.disc != nil {
		n.disc.close()
	}
	if n.share != nil {
		n.share.close()
	}
	return nil
}

// addPeer adds base (an http URL) to the set, unless it is this node.
func (n *Node) addPeer(base string, named bool) error {
	st, err := store.NewHTTPWith(base, n.peerHTTP)
	if err != nil {
		return err
	}
	n.mu.Lock()
	if n.self[st.String()] {
		n.mu.Unlock()
		return nil
	}
	if named {
		n.named[st.String()] = true
	} else {
		n.seen[st.String()] = time.Now()
	}
	n.mu.Unlock()
	if n.set.AddPeer(st) {
		n.cfg.Log("peer %s joined", st)
		return nil
	}
	if n.makeRoom() && n.set.AddPeer(st) {
		n.cfg.Log("peer %s joined", st)
	}
	return nil
}

// makeRoom drops one discovered peer that is down or lying, for a newcomer; a full list
// of healthy peers stays as it is.
func (n *Node) makeRoom() bool {
	for _, m := range n.set.Status() {
		if !m.Peer || m.State == "up" {
			continue
		}
		n.mu.Lock()
		named := n.named[m.Name]
		if !named {
			delete(n.seen, m.Name)
		}
		n.mu.Unlock()
		if !named && n.set.RemovePeer(m.Name) {
			return true
		}
	}
	return false
}

// expire drops discovered peers not heard from within maxAge.
func (n *Node) expire(maxAge time.Duration) {
	n.mu.Lock()
	var gone []string
	for u, t := range n.seen {
		if time.Since(t) > maxAge {
			gone = append(gone, u)
			delete(n.seen, u)
		}
	}
	n.mu.Unlock()
	for _, u := range gone {
		if n.set.RemovePeer(u) {
			n.cfg.Log("peer %s left (no announcement for %s)", u, maxAge)
		}
	}
}

func (n *Node) setSelf(u string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.self[u] = true
	if n.selfURL == "" {
		n.selfURL = u
	}
}

func baseURL(ip net.IP, port int) string {
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(port))
}
