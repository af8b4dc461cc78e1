package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// testStore packs size bytes of seeded random data into a store directory.
func testStore(t *testing.T, size int) (string, *index.Index, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(size), 3))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32() >> 28) // compressible, all different chunks
	}
	dir := filepath.Join(t.TempDir(), "store")
	w, err := store.CreateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	spec, _ := chunk.ParseSpec("cdc:16K:32K:64K")
	res, err := pack.Run(context.Background(), bytes.NewReader(data), w, pack.Options{Name: "test", Spec: spec, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return dir, res.Index, data
}

// origin serves a store and counts chunk requests per path.
type origin struct {
	*httptest.Server
	mu    sync.Mutex
	paths map[string]int // chunk requests
	files map[string]int // other requests
	total atomic.Int64   // chunk requests
}

func startOrigin(t *testing.T, dir string, delay time.Duration) *origin {
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	o := &origin{paths: map[string]int{}, files: map[string]int{}}
	h := server.Handler(root)
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/chunks/") {
			o.mu.Lock()
			o.paths[r.URL.Path]++
			o.mu.Unlock()
			o.total.Add(1)
			time.Sleep(delay) // a distant origin
		} else {
			o.mu.Lock()
			o.files[r.URL.Path]++
			o.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

type client struct {
	set   *store.MirrorSet
	cache *store.DiskCache
	node  *Node
}

func newClient(t *testing.T, originURL string, ix *index.Index, share string, peers []string) *client {
	t.Helper()
	st, err := store.NewHTTP(originURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := store.NewMirrorSet([]store.Store{st}, store.MirrorOptions{HedgeFraction: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	cache, err := store.OpenDiskCache(t.TempDir(), 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	node, err := Start(Config{Set: set, Cache: cache, Image: ix.Name, Share: share, Peers: peers, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	node.SetIndex(ix)
	t.Cleanup(func() { node.Close() })
	return &client{set, cache, node}
}

func readAll(t *testing.T, ix *index.Index, f store.Fetcher) [32]byte {
	t.Helper()
	r := image.NewReader(ix, f, image.Options{ReadAhead: -1})
	b, err := io.ReadAll(io.NewSectionReader(r, 0, ix.Size))
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func get(t *testing.T, u string, header ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// The share serves cached chunks and nothing else from the cache directory: not the
// index copies, not the rollback state, not paths that try to leave.
func TestShareServesChunksOnly(t *testing.T) {
	dir, ix, data := testStore(t, 1<<20)
	o := startOrigin(t, dir, 0)
	c := newClient(t, o.URL, ix, "127.0.0.1:0", nil)
	if sum := readAll(t, ix, c.node); sum != sha256.Sum256(data) {
		t.Fatal("wrong content")
	}
	cacheDir := c.cache.Dir().Path()
	os.MkdirAll(filepath.Join(cacheDir, "images/test"), 0o755)
	os.WriteFile(filepath.Join(cacheDir, "images/test/latest"), []byte("secret pointer"), 0o644)
	os.WriteFile(filepath.Join(cacheDir, "trust-state"), []byte("nowhere-trust-state 1\n"), 0o644)
	base := c.node.URL()
	if base == "" {
		t.Fatal("a node sharing on 127.0.0.1 does not know its URL")
	}
	id := ix.Entries[0].ID
	if code, b := get(t, base+"/"+store.ChunkPath(id)); code != 200 || len(b) != int(ix.Entries[0].Stored) {
		t.Errorf("cached chunk: %d, %d bytes", code, len(b))
	}
	up := "/chunks/" + strings.ToUpper(id.String()[:4]) + "/" + strings.ToUpper(id.String()) + ".cacnk"
	for _, p := range []string{
		"/images/test/latest", "/trust-state", "/", "/chunks/", "/chunks/../trust-state",
		"/chunks/" + id.String()[:4] + "/../../trust-state", up,
		"/chunks/ffff/" + id.String() + ".cacnk", "/" + store.ChunkPath(id) + "x",
	} {
		if code, b := get(t, base+p); code != 404 || bytes.Contains(b, []byte("secret")) {
			t.Errorf("GET %s: %d %q, want 404", p, code, b)
		}
	}
	// A chunk that is not cached: 404 unless asked to fetch; then fetched (it is this
	// image's) and served.
	c.cache.Prune(0)
	before := o.total.Load()
	if code, _ := get(t, base+"/"+store.ChunkPath(id)); code != 404 {
		t.Errorf("uncached chunk: %d, want 404", code)
	}
	if code, b := get(t, base+"/"+store.ChunkPath(id), store.PeerFetchHeader, "1"); code != 200 || len(b) != int(ix.Entries[0].Stored) {
		t.Errorf("fetch-through: %d, %d bytes", code, len(b))
	}
	if o.total.Load() != before+1 {
		t.Errorf("fetch-through cost the origin %d requests, want 1", o.total.Load()-before)
	}
	// Not a chunk of this image: never fetched for anyone.
	other := chunk.Sum([]byte("not in the image"))
	if code, _ := get(t, base+"/"+store.ChunkPath(other), store.PeerFetchHeader, "1"); code != 404 {
		t.Errorf("fetch-through of a foreign chunk: %d, want 404", code)
	}
	if o.total.Load() != before+1 {
		t.Error("a foreign chunk was asked of the origin")
	}
}

// Three clients reading the same image at the same moment, each naming the others as
// peers: each chunk's home fetches it once for all, so the origin serves each chunk
// about once instead of three times, and every client reads the right bytes.
func TestHomesFetchEachChunkOnce(t *testing.T) {
	dir, ix, data := testStore(t, 4<<20)
	o := startOrigin(t, dir, 5*time.Millisecond)
	var clients []*client
	var urls []string
	for range 3 {
		c := newClient(t, o.URL, ix, "127.0.0.1:0", nil)
		clients = append(clients, c)
		urls = append(urls, c.node.URL())
	}
	for i, c := range clients {
		for j, u := range urls {
			if i != j {
				c.node.addPeer(u, true)
			}
		}
	}
	var wg sync.WaitGroup
	sums := make([][32]byte, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); sums[i] = readAll(t, ix, c.node) }()
	}
	wg.Wait()
	for i, s := range sums {
		if s != sha256.Sum256(data) {
			t.Errorf("client %d read wrong content", i)
		}
	}
	unique := ix.Stats().Unique
	o.mu.Lock()
	distinct, twice := len(o.paths), 0
	for _, n := range o.paths {
		if n > 1 {
			twice++
		}
	}
	o.mu.Unlock()
	total := o.total.Load()
	t.Logf("%d chunks; origin: %d requests, %d distinct, %d more than once", unique, total, distinct, twice)
	if distinct != unique || float64(total) > 1.05*float64(unique) {
		t.Errorf("origin served %d requests for %d chunks (%d distinct): want each about once, not once per client", total, unique, distinct)
	}
	var homeHits int64
	for _, c := range clients {
		homeHits += c.node.Stats().HomeHits.Load()
	}
	if homeHits < int64(unique) {
		t.Errorf("%d chunks came from their home peer, want at least %d (two thirds of 3 × %d)", homeHits, unique, unique)
	}
}

// Clients that know each other load the signed index once from the origin: the index's
// home fetches it, the others take it from the home (checked against the pointer's pin).
func TestIndexLoadedOnceForTheLAN(t *testing.T) {
	dir, ix, _ := testStore(t, 1<<20)
	o := startOrigin(t, dir, 20*time.Millisecond)
	var clients []*client
	var urls []string
	for range 4 {
		c := newClient(t, o.URL, ix, "127.0.0.1:0", nil)
		clients = append(clients, c)
		urls = append(urls, c.node.URL())
	}
	for i, c := range clients {
		for j, u := range urls {
			if i != j {
				c.node.addPeer(u, true)
			}
		}
	}
	loc, _ := image.ParseLocation(o.URL + "/images/test")
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, _, err := image.Load(context.Background(), c.node.IndexStore(c.cache.Store(c.set)), loc, store.Policy{Attempts: 1})
			if err != nil || got.Size != ix.Size || len(got.Entries) != len(ix.Entries) {
				t.Errorf("load through the LAN: %v", err)
			}
		}()
	}
	wg.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	if n, l := o.files["/images/test/1.index"], o.files["/images/test/latest"]; n != 1 || l != 4 {
		t.Errorf("origin served the index %d times and the pointer %d times, want once and 4 times", n, l)
	}
	from := int64(0)
	for _, c := range clients {
		from += c.node.Stats().IndexFromPeer.Load()
	}
	if from != 3 {
		t.Errorf("%d clients took the index from a peer, want 3", from)
	}
}

// A peer that serves another index than the pointer pins is ignored: the index comes from
// the origin, and it is the right one.
func TestWrongIndexFromPeerIsIgnored(t *testing.T) {
	dir, ix, _ := testStore(t, 1<<20)
	o := startOrigin(t, dir, 0)
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("not the index you are looking for"))
	}))
	defer liar.Close()
	var logged []string
	var mu sync.Mutex
	st, _ := store.NewHTTP(o.URL, nil)
	set, _ := store.NewMirrorSet([]store.Store{st}, store.MirrorOptions{})
	defer set.Close()
	n, err := Start(Config{Set: set, Image: "test", Peers: []string{liar.URL}, Log: func(f string, a ...any) {
		mu.Lock()
		logged = append(logged, fmt.Sprintf(f, a...))
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	loc, _ := image.ParseLocation(o.URL + "/images/test")
	got, _, err := image.Load(context.Background(), n.IndexStore(set), loc, store.Policy{Attempts: 1})
	if err != nil || got.Size != ix.Size {
		t.Fatalf("load: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(strings.Join(logged, "\n"), "not the one the latest pointer pins") {
		t.Errorf("no line about the peer's wrong index: %q", logged)
	}
}

// A room booting at once asks a chunk's home for it all at the same moment, and a home
// may still be loading the index when the first neighbour asks. The home makes such
// requests wait (for the index, for a serving slot, for the one fetch already running)
// instead of refusing them, since a refused neighbour fetches from the origin.
func TestHomeServesARoomAtOnce(t *testing.T) {
	dir, ix, _ := testStore(t, 256<<10)
	o := startOrigin(t, dir, 50*time.Millisecond)
	st, err := store.NewHTTP(o.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := store.NewMirrorSet([]store.Store{st}, store.MirrorOptions{HedgeFraction: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	cache, err := store.OpenDiskCache(t.TempDir(), 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	home, err := Start(Config{Set: set, Cache: cache, Image: ix.Name, Share: "127.0.0.1:0", MaxServing: 2, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { home.Close() })
	const room = 40
	e := ix.Entries[0]
	u := home.URL() + "/" + store.ChunkPath(e.ID)
	codes := make([]int, room)
	var wg sync.WaitGroup
	for i := range room {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set(store.PeerFetchHeader, "1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
			if resp.StatusCode == 200 && len(b) != int(e.Stored) {
				t.Errorf("neighbour %d got %d bytes, want %d", i, len(b), e.Stored)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // every neighbour asked before the home has its index
	home.SetIndex(ix)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("neighbour %d: status %d, want 200", i, c)
		}
	}
	if got := o.total.Load(); got != 1 {
		t.Errorf("origin served the chunk %d times for a room of %d, want once", got, room)
	}
	if b := home.Stats().Busy.Load(); b != 0 {
		t.Errorf("%d neighbours refused as busy", b)
	}
}
