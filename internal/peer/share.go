package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// The share: a client's cache directory served read-only over HTTP in the store layout:
// chunks, and the index of the image it reads (index.go). The latest pointer and the
// rollback state that share the directory are never served (a 404, like any other path).
// At most MaxServing requests are served (or chunks fetched for neighbours) at once, so a
// client serves its neighbours without slowing its own reads much; more wait up to
// QueueWait for their turn, then get 503.
// A request with store.PeerFetchHeader for a chunk of this client's image that is not in
// the cache is fetched first (the client is that chunk's home: fetch.go).

// fetchForPeer bounds one fetch made for a neighbour.
const fetchForPeer = 2 * time.Minute

type share struct {
	srv  *http.Server
	root *os.Root
	ip   net.IP // the listen address (maybe unspecified)
	port int
}

func (n *Node) serve(addr string) (*share, error) {
	root, err := os.OpenRoot(n.cfg.Cache.Dir().Path())
	if err != nil {
		return nil, fmt.Errorf("share %s: %w", n.cfg.Cache.Dir().Path(), err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("share: listen %s: %w", addr, err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	if !tcp.IP.IsUnspecified() {
		n.setSelf(baseURL(tcp.IP, tcp.Port))
	}
	sh := &share{root: root, ip: tcp.IP, port: tcp.Port}
	sh.srv = &http.Server{Handler: n.shareHandler(root), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = sh.srv.Serve(ln) }()
	n.cfg.Log("sharing the cache %s on http://%s", n.cfg.Cache.Dir().Path(), ln.Addr())
	return sh, nil
}

func (s *share) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.root.Close()
}

// SharePort returns the port the share listens on (0: not sharing).
func (n *Node) SharePort() int {
	if n.share == nil {
		return 0
	}
	return n.share.port
}

func (n *Node) shareHandler(root *os.Root) http.Handler {
	files := server.Handler(root)
	slots := make(chan struct{}, n.cfg.MaxServing)
	// acquire takes a serving slot, waiting at most QueueWait: a neighbour refused goes to
	// the mirrors, which for a room booting at once (every machine asking a chunk's home
	// at the same moment) is the origin traffic sharing is there to save, while a short
	// wait on the LAN costs little.
	acquire := func(r *http.Request) bool {
		select {
		case slots <- struct{}{}:
			return true
		default:
		}
		t := time.NewTimer(n.cfg.QueueWait)
		defer t.Stop()
		select {
		case slots <- struct{}{}:
			return true
		case <-t.C:
		case <-r.Context().Done():
		}
		return false
	}
	busy := func(w http.ResponseWriter) {
		n.stats.Busy.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := chunkOfPath(r.URL.Path)
		if !ok {
			n.serveIndex(w, r, root, files)
			return
		}
		if st, err := root.Stat(store.ChunkPath(id)); err == nil && st.Mode().IsRegular() {
			if !acquire(r) {
				busy(w)
				return
			}
			defer func() { <-slots }()
			rec := &counter{ResponseWriter: w, status: http.StatusOK}
			files.ServeHTTP(rec, r)
			if rec.status == http.StatusOK {
				n.stats.Served.Add(1)
				n.stats.ServedBytes.Add(rec.n)
			}
			return
		}
		if r.Header.Get(store.PeerFetchHeader) != "1" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		if !await(r, n.indexSet, n.cfg.QueueWait) {
			// A home asked before it has the image's index cannot yet tell whether the
			// chunk is the image's (a room booting at once: a neighbour was faster).
			busy(w)
			return
		}
		ref, mine := n.ref(id)
		if !mine {
			http.NotFound(w, r)
			return
		}
		// Starting a fetch takes a slot (a neighbour cannot make this client fetch more than
		// MaxServing chunks at once); joining one already running adds no work and waits
		// for it without a slot, however many neighbours want that chunk.
		if !n.fetching(id) {
			if !acquire(r) {
				busy(w)
				return
			}
			defer func() { <-slots }()
		}
		ctx, cancel := context.WithTimeout(r.Context(), fetchForPeer)
		defer cancel()
		f, err := n.do(ctx, flightKey{id, ""}, ref, n.direct.Fetch)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				n.cfg.Log("share: fetching %s for %s: %v", id, r.RemoteAddr, err)
			}
			http.Error(w, "cannot fetch it now", http.StatusServiceUnavailable)
			return
		}
		n.stats.FetchedFor.Add(1)
		n.stats.Served.Add(1)
		n.stats.ServedBytes.Add(int64(len(f.Raw)))
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", fmt.Sprint(len(f.Raw)))
		h.Set("Cache-Control", server.CacheControl(store.ChunkPath(id)))
		h.Set("ETag", `"`+id.String()+`"`)
		_, _ = w.Write(f.Raw)
	})
}

// await waits up to d for ready to be closed (or the request to end).
func await(r *http.Request, ready <-chan struct{}, d time.Duration) bool {
	select {
	case <-ready:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ready:
		return true
	case <-t.C:
	case <-r.Context().Done():
	}
	return false
}

// chunkOfPath accepts exactly /chunks/<4 hex>/<64 hex>.cacnk with the prefix matching.
func chunkOfPath(p string) (chunk.ID, bool) {
	rest, ok := strings.CutPrefix(p, "/")
	if !ok || !strings.HasPrefix(rest, "chunks/") || len(rest) != len("chunks/0000/")+64+len(".cacnk") {
		return chunk.ID{}, false
	}
	name, ok := strings.CutSuffix(rest[len("chunks/0000/"):], ".cacnk")
	if !ok {
		return chunk.ID{}, false
	}
	id, err := chunk.ParseID(name)
	if err != nil || store.ChunkPath(id) != rest {
		return chunk.ID{}, false
	}
	return id, true
}

type counter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *counter) WriteHeader(code int) { c.status = code; c.ResponseWriter.WriteHeader(code) }
func (c *counter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}
