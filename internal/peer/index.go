package peer

import (
	"context"
	"crypto/sha256"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Loading the index through the LAN. A room booting at once would otherwise fetch the
// signed index from the origin once per machine. The latest pointer still comes from the
// mirrors (it is what says which version is current, and it is tiny); the index it pins
// has a home among the peers like a chunk (by its path), which fetches it from the
// mirrors once and serves it to the others. A peer's copy is used only when its SHA-256
// is the one the pointer pins; otherwise (or when the home does not answer) the index
// comes from the mirrors. Either way the caller (image.LoadVerified) still checks the
// pointer's and the index's signatures.

// indexFetchTimeout bounds asking the home peer for the index.
const indexFetchTimeout = 30 * time.Second

// IndexStore returns inner with the image's index fetched through the LAN: pass it to
// image.LoadVerified. inner also serves the index when a neighbour asks this node to
// fetch it.
func (n *Node) IndexStore(inner store.Store) store.Store {
	if n.files.Swap(&inner) == nil {
		close(n.filesSet)
	}
	return &indexStore{n: n, inner: inner, pins: map[string][32]byte{}}
}

type indexStore struct {
	n     *Node
	inner store.Store
	mu    sync.Mutex
	pins  map[string][32]byte // index path -> the sha256 the latest pointer pins
}

func (s *indexStore) String() string { return s.inner.String() }

func (s *indexStore) Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	return s.inner.Chunk(ctx, ref)
}

func (s *indexStore) File(ctx context.Context, name string, max int64) ([]byte, error) {
	if strings.HasSuffix(name, "/latest") {
		b, err := s.inner.File(ctx, name, max)
		if err == nil {
			if p, perr := index.ParsePointer(b); perr == nil {
				s.mu.Lock()
				s.pins[store.IndexPath(p.Name, p.Version)] = p.SHA256
				s.mu.Unlock()
			}
		}
		return b, err
	}
	s.mu.Lock()
	pin, ok := s.pins[name]
	s.mu.Unlock()
	if !ok || !strings.HasSuffix(name, ".index") {
		return s.inner.File(ctx, name, max)
	}
	key := flightKey{id: chunk.ID(sha256.Sum256([]byte(name))), home: "index"}
	h := s.n.home(key.id)
	if h == "" { // this node is the home: fetch it once, for itself and any neighbour asking
		return s.n.homeIndex(ctx, key, name, func(ctx context.Context) ([]byte, error) {
			return s.inner.File(ctx, name, max)
		})
	}
	if b, ok := s.n.indexFromPeer(ctx, h, name, max, pin); ok {
		return b, nil
	}
	return s.inner.File(ctx, name, max)
}

// indexFromPeer asks peer h for the index at name, accepting it only if it has the
// pinned hash.
func (n *Node) indexFromPeer(ctx context.Context, h, name string, max int64, pin [32]byte) ([]byte, bool) {
	st, err := store.NewHTTPWith(h, n.peerHTTP)
	if err != nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, indexFetchTimeout)
	defer cancel()
	b, err := st.PeerFile(ctx, name, max, true)
	if err != nil {
		n.cfg.Log("index %s from peer %s: %v (asking the mirrors)", name, h, err)
		return nil, false
	}
	if sha256.Sum256(b) != pin {
		n.cfg.Log("peer %s served an index %s that is not the one the latest pointer pins (asking the mirrors)", h, name)
		return nil, false
	}
	n.stats.IndexFromPeer.Add(1)
	return b, true
}

var indexPathRE = regexp.MustCompile(`^/images/([A-Za-z0-9_][A-Za-z0-9._-]{0,127})/([1-9][0-9]{0,18})\.index$`)

// serveIndex answers a neighbour's request for this node's image's index: from the
// cache directory, or, asked to fetch it, from this node's sources (once for everyone).
// Anything else is 404.
func (n *Node) serveIndex(w http.ResponseWriter, r *http.Request, root *os.Root, files http.Handler) {
	m := indexPathRE.FindStringSubmatch(r.URL.Path)
	if m == nil || m[1] != n.cfg.Image || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if st, err := root.Stat(name); err == nil && st.Mode().IsRegular() {
		files.ServeHTTP(w, r)
		return
	}
	if r.Header.Get(store.PeerFetchHeader) != "1" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	// A neighbour may ask before this node has started loading the index itself.
	if !await(r, n.filesSet, n.cfg.QueueWait) {
		http.Error(w, "not loading the index yet", http.StatusServiceUnavailable)
		return
	}
	src := n.files.Load()
	ctx, cancel := context.WithTimeout(r.Context(), fetchForPeer)
	defer cancel()
	key := flightKey{id: chunk.ID(sha256.Sum256([]byte(name))), home: "index"}
	b, err := n.homeIndex(ctx, key, name, func(ctx context.Context) ([]byte, error) {
		return (*src).File(ctx, name, image.MaxIndexFile)
	})
	if err != nil {
		http.Error(w, "cannot fetch it now", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

// indexCopy is an index file as this node, its home, fetched it.
type indexCopy struct {
	name string
	b    []byte
}

// homeIndex fetches the index at name once for this node and every neighbour asking: in
// one flight while they ask at the same time, and from the copy kept after it when one
// asks later (the node's own load and a neighbour's request may come one after the
// other; without the copy the second would fetch it from the mirrors again). Versioned
// index files never change; each asker checks the copy against its own pinned hash.
func (n *Node) homeIndex(ctx context.Context, key flightKey, name string, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	if c := n.index.Load(); c != nil && c.name == name {
		return c.b, nil
	}
	f, err := n.do(ctx, key, chunk.Ref{}, func(ctx context.Context, _ chunk.Ref) (store.Fetched, error) {
		b, err := fetch(ctx)
		if err == nil {
			n.index.Store(&indexCopy{name: name, b: b})
		}
		return store.Fetched{Raw: b}, err
	})
	return f.Raw, err
}
