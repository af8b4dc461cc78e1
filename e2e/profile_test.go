package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/server"
)

// gatedServer serves a store with nowhere's handler and keeps an access log of every
// request's arrival and completion, in order. Requests for the paths in hold wait until
// release is closed.
type gatedServer struct {
	url     string
	release chan struct{}
	once    sync.Once

	mu   sync.Mutex
	hold map[string]bool
	log  []access
}

type access struct {
	path string
	done bool // false: arrived; true: answered
}

func startGatedServer(t *testing.T, dir string, hold map[string]bool) *gatedServer {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedServer{release: make(chan struct{}), hold: hold}
	h := server.Handler(root)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.note(r.URL.Path, false)
		g.mu.Lock()
		held := g.hold[r.URL.Path]
		g.mu.Unlock()
		if held {
			select {
			case <-g.release:
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
		g.note(r.URL.Path, true)
	}))
	t.Cleanup(func() { g.open(); srv.Close(); root.Close() })
	g.url = srv.URL
	return g
}

// open lets the held requests (and all later ones) through.
func (g *gatedServer) open() { g.once.Do(func() { close(g.release) }) }

func (g *gatedServer) note(path string, done bool) {
	g.mu.Lock()
	g.log = append(g.log, access{path, done})
	g.mu.Unlock()
}

func (g *gatedServer) accesses() []access {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]access(nil), g.log...)
}

// count returns how many requests for path arrived and how many were answered.
func (g *gatedServer) count(path string) (arrived, answered int) {
	for _, a := range g.accesses() {
		if a.path == path {
			if a.done {
				answered++
			} else {
				arrived++
			}
		}
	}
	return
}

// preadDirect reads n bytes at off with O_DIRECT (each read reaches the mount) and checks them.
func preadDirect(path string, off int64, want []byte) error {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	buf := alignedBuf(len(want))
	n, err := preadRetryingEINTR(fd, buf, off)
	if err != nil || n != len(want) {
		return fmt.Errorf("pread at %d: %d bytes, %v", off, n, err)
	}
	if !bytes.Equal(buf, want) {
		return fmt.Errorf("pread at %d: wrong bytes", off)
	}
	return nil
}

// TestMountPrefetchesTheProfileReadsFirst records a profile from a real mount, publishes
// it with `nowhere profile apply` (the next version, signed), and mounts that version with
// --prefetch 2 against a server that holds the profile's chunk requests. The server's
// access log must show: the mount asks for the profile's chunks by itself, two at a time;
// while both prefetches are stuck, reads of a chunk outside the profile and of one the
// queue has not reached are fetched and answered anyway (never queued behind the
// prefetches); then every profile chunk is fetched exactly once, and reading them all
// fetches nothing more.
func TestMountPrefetchesTheProfileReadsFirst(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	img := make([]byte, 64*64<<10)
	rand.Read(img)
	imgFile := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(imgFile, img, 0o644); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "store")
	state := filepath.Join(dir, "trust-state") // this test's own rollback memory: it publishes versions 1 and 2
	mustNowhere(t, "pack", imgFile, "--store", st, "--name", "disk", "--chunking", "fixed:64K", "--sign-key", secretKey, "--progress", "never")
	const K = 64 << 10
	chunkOf := func(i int) []byte { return img[i*K : (i+1)*K] }

	// Record: a "boot" that reads chunks 10..29, then 5.
	profiled := []int{}
	for i := 10; i < 30; i++ {
		profiled = append(profiled, i)
	}
	profiled = append(profiled, 5)
	rec := mountDaemon(t, st+"/images/disk", "disk", "--readahead", "0", "--state", state)
	for _, i := range profiled {
		if err := preadDirect(rec.file, int64(i*K), chunkOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	prof := filepath.Join(dir, "boot.profile")
	out := mustNowhere(t, "profile", "record", rec.dir, "-o", prof, "--idle", "100ms")
	if !strings.Contains(out.stdout, "recorded 21 chunks") {
		t.Fatalf("record: %s", out.stdout)
	}
	rec.unmount(t)
	out = mustNowhere(t, "profile", "apply", st+"/images/disk", prof, "--sign-key", secretKey)
	if !strings.Contains(out.stdout, "published disk version 2: version 1 with a profile of 21 chunks") {
		t.Fatalf("apply: %s", out.stdout)
	}
	info := mustNowhere(t, "info", st+"/images/disk", "--key", publicKey, "--state", state).stdout
	if !strings.Contains(info, "version:   2") || !strings.Contains(info, "profile:   21 chunks") || !strings.Contains(info, "verified") {
		t.Fatalf("info after apply:\n%s", info)
	}
	ix := loadIndex(t, st, "disk", 2)
	if len(ix.Profile.Entries) != 21 || ix.Profile.Entries[0] != 10 || ix.Profile.Entries[20] != 5 {
		t.Fatalf("profile in the index: %v", ix.Profile.Entries)
	}

	// Serve it with every profile chunk held, except chunk 27 (a read will want it
	// before the queue gets there).
	path := func(i int) string { return chunkURLPath(ix.Entries[i]) }
	hold := map[string]bool{}
	for _, i := range profiled {
		if i != 27 {
			hold[path(i)] = true
		}
	}
	srv := startGatedServer(t, st, hold)
	m := mountDaemon(t, srv.url+"/images/disk", "disk", "--prefetch", "2", "--readahead", "0", "--state", state)
	profileRequests := func() (arrived int) {
		for _, i := range profiled {
			a, _ := srv.count(path(i))
			arrived += a
		}
		return arrived
	}
	if !waitFor(cmdTimeout, func() bool { return profileRequests() == 2 }) {
		t.Fatalf("the mount did not prefetch: %d profile chunk requests\nstatus: %s\nlog: %s\naccesses: %v", profileRequests(), readFile(filepath.Join(m.dir, ".status")), readFile(m.log), srv.accesses())
	}
	for k, i := range profiled[:2] { // the queue's head, in order
		if a, _ := srv.count(path(i)); a != 1 {
			t.Fatalf("prefetch %d: chunk %d requested %d times", k, i, a)
		}
	}
	// Both prefetches are stuck. Reads must not wait for them.
	for _, i := range []int{50, 27} {
		if err := preadDirect(m.file, int64(i*K), chunkOf(i)); err != nil {
			t.Fatal(err)
		}
		// The server notes an answer after writing it: the read can return first.
		waitFor(cmdTimeout, func() bool { _, d := srv.count(path(i)); return d >= 1 })
		if a, d := srv.count(path(i)); a != 1 || d != 1 {
			t.Fatalf("chunk %d: %d requests, %d answered", i, a, d)
		}
	}
	for _, i := range profiled[:2] {
		if _, d := srv.count(path(i)); d != 0 {
			t.Fatalf("chunk %d was answered: the test's hold failed", i)
		}
	}
	if n := profileRequests(); n != 3 { // the two stuck prefetches and the read of 27
		t.Fatalf("%d profile chunk requests while the prefetches were stuck, want 3", n)
	}
	srv.open()
	statusFile := filepath.Join(m.dir, ".status")
	if !waitFor(cmdTimeout, func() bool { return strings.Contains(readFile(statusFile), "profile: 21 chunks, done: 20 prefetched") }) {
		t.Fatalf("prefetching did not finish:\n%s", readFile(statusFile))
	}
	for _, i := range profiled {
		if a, _ := srv.count(path(i)); a != 1 {
			t.Errorf("profile chunk %d requested %d times, want once", i, a)
		}
	}
	before := len(srv.accesses())
	for _, i := range profiled {
		if err := preadDirect(m.file, int64(i*K), chunkOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	if after := len(srv.accesses()); after != before {
		t.Errorf("reading the profile's chunks after prefetching made %d more requests", (after-before)/2)
	}
	status := readFile(statusFile)
	t.Logf("status:\n%s", status)
	if !strings.Contains(status, "reads: 20 prefetched") || !strings.Contains(status, "1 early, 1 outside the profile") ||
		!strings.Contains(status, "read:    22 chunks") {
		t.Errorf("status does not account for the reads:\n%s", status)
	}
}
