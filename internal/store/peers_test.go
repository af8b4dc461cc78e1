package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// partialCopy copies a store keeping only the chunks keep says yes to: a peer's cache.
func partialCopy(t *testing.T, src string, refs []chunk.Ref, keep func(i int) bool) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "peer")
	for i, r := range refs {
		if !keep(i) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, store.ChunkPath(r.ID)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, store.ChunkPath(r.ID))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(dst, 0o755)
	return dst
}

func slowMirror(t *testing.T, dir string, d time.Duration) *testMirror {
	m := &testMirror{t: t, dir: dir, addr: "127.0.0.1:0", delay: func(*http.Request) time.Duration { return d }}
	m.start()
	t.Cleanup(m.kill)
	return m
}

// A peer that holds half the chunks serves those, the mirror the rest; its 404s are
// misses, not failures: it stays up and nothing counts as a failover.
func TestPeerServesWhatItHasAndMissesAreNormal(t *testing.T) {
	dir, ix, data := mirrorImage(t, 4<<20, 11)
	refs := refsOf(ix)
	origin := slowMirror(t, dir, 20*time.Millisecond)
	peer := startMirror(t, partialCopy(t, dir, refs, func(i int) bool { return i%2 == 0 }))
	var log logRecorder
	m := newObserver()
	set := newSet(t, store.MirrorOptions{Log: log.logf, Metrics: m, HedgeFraction: -1}, origin.store(t))
	if !set.AddPeer(peer.store(t)) {
		t.Fatal("AddPeer refused the first peer")
	}
	set.Probe(context.Background())
	sum, st := readImage(t, ix, set, nil)
	if sum != sha256.Sum256(data) || st.Errors != 0 {
		t.Fatalf("wrong content or %d errors", st.Errors)
	}
	ps := statusOf(t, set, peer.URL())
	if ps.State != "up" || !ps.Peer {
		t.Errorf("peer state %q (peer=%v) after its misses, want up", ps.State, ps.Peer)
	}
	served := ps.Bytes
	if served == 0 || ps.Requests < int64(len(refs))/4 {
		t.Errorf("peer served %d bytes in %d requests for %d chunks: not asked first", served, ps.Requests, len(refs))
	}
	if got := origin.requests.Load(); got > int64(len(refs))*3/4 {
		t.Errorf("origin answered %d of %d chunk requests: the peer's half did not come from the peer", got, len(refs))
	}
	if f := m.Failovers(); f != 0 {
		t.Errorf("%v failovers counted: a peer's miss is not one", f)
	}
	if log.find("demoted") != "" {
		t.Errorf("something was demoted:\n%s", &log)
	}
	t.Logf("%d chunks: peer %d requests (hit ratio %.2f), origin %d", len(refs), ps.Requests, ps.HitRatio, origin.requests.Load())
}

// An empty peer is asked for a few chunks, then left alone: its hit ratio falls below
// what a LAN round trip costs against the mirror. Where exactly it stops depends on the
// measured times (loopback under load), so the test checks that it stops: a second pass
// over the same chunks asks it (almost) nothing.
func TestEmptyPeerStopsBeingAsked(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 4<<20, 12)
	refs := refsOf(ix)
	origin := slowMirror(t, dir, 10*time.Millisecond)
	peer := startMirror(t, t.TempDir())
	set := newSet(t, store.MirrorOptions{HedgeFraction: -1}, origin.store(t))
	set.AddPeer(peer.store(t))
	set.Probe(context.Background())
	pass := func() {
		for _, r := range refs {
			if _, err := set.Fetch(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	pass()
	first := statusOf(t, set, peer.URL())
	pass()
	ps := statusOf(t, set, peer.URL())
	if ps.State != "up" {
		t.Errorf("empty peer is %q, want up", ps.State)
	}
	if first.Requests == 0 || first.Requests > 30 {
		t.Errorf("empty peer asked %d times for %d chunks, want a few then none", first.Requests, len(refs))
	}
	if again := ps.Requests - first.Requests; again > 2 {
		t.Errorf("empty peer asked %d more times in a second pass over %d chunks: not left alone", again, len(refs))
	}
	if ps.HitRatio >= 0.5 {
		t.Errorf("hit ratio %.3f after only misses, want below the prior 0.5", ps.HitRatio)
	}
	t.Logf("%d chunks: peer asked %d times, then %d; hit ratio %.3f", len(refs), first.Requests, ps.Requests-first.Requests, ps.HitRatio)
}

// A peer serving corrupt chunks is demoted hard and logged; the content is still right.
func TestCorruptPeerIsDemotedHard(t *testing.T) {
	dir, ix, data := mirrorImage(t, 2<<20, 13)
	origin := slowMirror(t, dir, 5*time.Millisecond)
	bad := startMirror(t, corruptCopy(t, dir))
	var log logRecorder
	set := newSet(t, store.MirrorOptions{Log: log.logf, HedgeFraction: -1}, origin.store(t))
	set.AddPeer(bad.store(t))
	set.Probe(context.Background())
	sum, st := readImage(t, ix, set, nil)
	if sum != sha256.Sum256(data) || st.Errors != 0 {
		t.Fatalf("wrong content or %d errors", st.Errors)
	}
	if s := statusOf(t, set, bad.URL()); s.State != "bad" || s.Corrupt == 0 {
		t.Errorf("corrupt peer: state %q, %d corrupt; want bad", s.State, s.Corrupt)
	}
	if log.find("peer "+bad.URL(), "served a corrupt chunk", "demoted hard") == "" {
		t.Errorf("no demotion line for the peer:\n%s", &log)
	}
	// Requests already in flight when the first lie is caught still count; none after.
	if n, refs := bad.requests.Load(), len(refsOf(ix)); n > int64(refs)/4 {
		t.Errorf("the bad peer was asked %d times for %d chunks; want it dropped after its first lie", n, refs)
	}
}

// Peers never serve metadata files: the index and pointer come from mirrors.
func TestPeersNeverServeFiles(t *testing.T) {
	dir, _, _ := mirrorImage(t, 1<<20, 14)
	origin := startMirror(t, dir)
	peer := startMirror(t, dir) // a full copy, files included: it must still not be asked
	set := newSet(t, store.MirrorOptions{}, origin.store(t))
	set.AddPeer(peer.store(t))
	origin.kill() // even with the mirror gone, files do not come from the peer
	_, err := set.File(context.Background(), "images/test/latest", 4096)
	if err == nil {
		t.Fatal("the latest pointer came from a peer")
	}
	if strings.Contains(err.Error(), peer.URL()) {
		t.Errorf("the peer was asked for a file: %v", err)
	}
}

// The peer list is bounded; duplicates are refused; a peer can be removed.
func TestPeerListIsBounded(t *testing.T) {
	dir, _, _ := mirrorImage(t, 256<<10, 15)
	origin := startMirror(t, dir)
	set := newSet(t, store.MirrorOptions{MaxPeers: 2}, origin.store(t))
	mk := func(u string) store.Store {
		s, err := store.NewHTTP(u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if !set.AddPeer(mk("http://127.0.0.1:1")) || !set.AddPeer(mk("http://127.0.0.1:2")) {
		t.Fatal("the first two peers were refused")
	}
	if set.AddPeer(mk("http://127.0.0.1:2")) {
		t.Error("a duplicate peer was taken")
	}
	if set.AddPeer(mk("http://127.0.0.1:3")) {
		t.Error("a third peer was taken with MaxPeers 2")
	}
	if set.AddPeer(mk(origin.URL())) {
		t.Error("the mirror was taken again as a peer")
	}
	if !set.RemovePeer("http://127.0.0.1:1") || set.RemovePeer(origin.URL()) {
		t.Error("RemovePeer removed the wrong thing")
	}
	if !set.AddPeer(mk("http://127.0.0.1:3")) {
		t.Error("no room after a removal")
	}
	if set.Len() != 3 {
		t.Errorf("set has %d members, want the mirror and 2 peers", set.Len())
	}
}

// FetchFromPeer with fetch asks the peer to fetch what it lacks (the header); without,
// a miss is ErrNotFound and leaves the peer up.
func TestFetchFromPeerAsksToFetch(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 512<<10, 16)
	refs := refsOf(ix)
	origin := startMirror(t, dir)
	var asked atomic.Int64
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	// A peer that has nothing unless asked to fetch (then it has everything).
	peerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(store.PeerFetchHeader) != "1" {
			http.NotFound(w, r)
			return
		}
		asked.Add(1)
		b, err := root.ReadFile(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer peerSrv.Close()
	peer := peerSrv.URL
	set := newSet(t, store.MirrorOptions{}, origin.store(t))
	ps, _ := store.NewHTTP(peer, nil)
	set.AddPeer(ps)
	if _, err := set.FetchFromPeer(context.Background(), peer, refs[0], false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("plain request to a peer without the chunk: %v, want not found", err)
	}
	f, err := set.FetchFromPeer(context.Background(), peer, refs[0], true)
	if err != nil || len(f.Plain) != int(refs[0].Len) || asked.Load() != 1 {
		t.Errorf("fetch-through request: %v, %d bytes, asked %d", err, len(f.Plain), asked.Load())
	}
	if s := statusOf(t, set, peer); s.State != "up" {
		t.Errorf("peer %q after a miss and a hit", s.State)
	}
	if _, err := set.FetchFromPeer(context.Background(), origin.URL(), refs[0], true); err == nil {
		t.Error("FetchFromPeer asked a mirror")
	}
}
