package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
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

// mirrorImage packs size bytes of seeded data (half random, half compressible text) into
// a new store directory.
func mirrorImage(t testing.TB, size int, seed uint64) (dir string, ix *index.Index, data []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	data = make([]byte, size)
	for i := 0; i < size; i += 4096 {
		blk := data[i:min(i+4096, size)]
		if (i/4096)%2 == 0 {
			for j := range blk {
				blk[j] = byte(rng.Uint32())
			}
		} else {
			copy(blk, bytes.Repeat([]byte(fmt.Sprintf("line %d of block %d\n", rng.IntN(1000), i)), 4096))
		}
	}
	dir = filepath.Join(t.TempDir(), "store")
	w, err := store.CreateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	spec, err := chunk.ParseSpec("cdc:16K:32K:64K")
	if err != nil {
		t.Fatal(err)
	}
	res, err := pack.Run(context.Background(), bytes.NewReader(data), w, pack.Options{Name: "test", Spec: spec, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return dir, res.Index, data
}

// corruptCopy copies a store, flipping one byte in the middle of every chunk file.
func corruptCopy(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "corrupt")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(filepath.Join(dst, "chunks"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".cacnk") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0x55
		n++
		return os.WriteFile(p, b, 0o644)
	})
	if err != nil || n == 0 {
		t.Fatalf("corrupting %s: %v (%d chunks)", dst, err, n)
	}
	return dst
}

// testMirror is a real HTTP server (the project's handler) for a store directory on a
// loopback port that can be killed and restarted on the same address.
type testMirror struct {
	t     testing.TB
	dir   string
	addr  string
	delay func(r *http.Request) time.Duration // nil: none

	mu       sync.Mutex
	srv      *http.Server
	requests atomic.Int64 // chunk requests answered
	fail     atomic.Int64 // HTTP status to answer chunk requests with (0: serve them)
}

func startMirror(t testing.TB, dir string) *testMirror {
	t.Helper()
	m := &testMirror{t: t, dir: dir, addr: "127.0.0.1:0"}
	m.start()
	t.Cleanup(m.kill)
	return m
}

func (m *testMirror) start() {
	m.t.Helper()
	root, err := os.OpenRoot(m.dir)
	if err != nil {
		m.t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // the old port may linger a moment after a kill
		ln, err = net.Listen("tcp", m.addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		m.t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	h := server.Handler(root)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/chunks/") {
			m.requests.Add(1)
			if code := m.fail.Load(); code != 0 {
				http.Error(w, "failing on purpose", int(code))
				return
			}
			if m.delay != nil {
				select {
				case <-time.After(m.delay(r)):
				case <-r.Context().Done():
					return
				}
			}
		}
		h.ServeHTTP(w, r)
	})}
	m.mu.Lock()
	m.srv = srv
	m.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// kill stops the server at once, dropping connections and requests in flight.
func (m *testMirror) kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srv != nil {
		m.srv.Close()
		m.srv = nil
	}
}

func (m *testMirror) URL() string { return "http://" + m.addr }

func (m *testMirror) store(t testing.TB) store.Store {
	s, err := store.NewHTTP(m.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// logRecorder collects log lines.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logRecorder) find(parts ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		return line
	}
	return ""
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// readImage reads the whole image through f in reads of 256 KiB, calling during(off)
// before each read, and returns the sha256 of what it read and the reader's stats.
func readImage(t testing.TB, ix *index.Index, f store.Fetcher, during func(off int64)) ([32]byte, image.StatsSnapshot) {
	t.Helper()
	r := image.NewReader(ix, f, image.Options{})
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for off := int64(0); off < ix.Size; {
		if during != nil {
			during(off)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		n, err := r.ReadAtContext(ctx, buf, off)
		cancel()
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read at %d: %v", off, err)
		}
		h.Write(buf[:n])
		off += int64(n)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, r.Snapshot()
}

func refsOf(ix *index.Index) []chunk.Ref {
	seen := map[chunk.ID]bool{}
	var out []chunk.Ref
	for _, e := range ix.Entries {
		if !e.Zero && !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored})
		}
	}
	return out
}

func statusOf(t testing.TB, s *store.MirrorSet, url string) store.MirrorStatus {
	t.Helper()
	for _, m := range s.Status() {
		if m.Name == url {
			return m
		}
	}
	t.Fatalf("mirror %s not in the set", url)
	return store.MirrorStatus{}
}

// eventually polls cond every 20 ms for up to limit (generous: the machine is shared).
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
