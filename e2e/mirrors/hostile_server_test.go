package mirrors

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostileMode is how a hostileServer misbehaves.
type hostileMode string

const (
	// honest serves the store as it is (a baseline, and the honest half of a test).
	honest hostileMode = "honest"
	// wrongBytes serves every chunk with one byte flipped (same length, not its name).
	wrongBytes hostileMode = "wrongBytes"
	// staleMetadata, otherImage and otherKey serve the files of hostileServer.Override
	// instead of the store's (an older signed latest pointer, another image's pointer and
	// index, metadata signed by another key: see hostileFixture); the rest is honest.
	staleMetadata hostileMode = "staleMetadata"
	otherImage    hostileMode = "otherImage"
	otherKey      hostileMode = "otherKey"
	// html answers every path with 200 and a text/html page.
	html hostileMode = "html"
	// stallAfterHeaders sends 200 and its headers for every path, then nothing until the
	// client goes away.
	stallAfterHeaders hostileMode = "stallAfterHeaders"
	// trickle sends the honest content a few bytes a second (trickleBytes every
	// trickleEvery), with no Content-Length.
	trickle hostileMode = "trickle"
	// tarpitChunks is honest except for chunks (paths under chunks/), which stall after
	// the headers until the client goes away: a mirror that passes every small probe.
	tarpitChunks hostileMode = "tarpitChunks"
	// endlessBody answers every path with 200 and a body that never ends, without a
	// length, as fast as the client reads.
	endlessBody hostileMode = "endlessBody"
	// noLength serves the honest content with chunked transfer encoding and no
	// Content-Length: not hostile, a case a client must handle.
	noLength hostileMode = "noLength"
)

// hostileModes lists every mode but honest.
var hostileModes = []hostileMode{wrongBytes, staleMetadata, otherImage, otherKey, html,
	stallAfterHeaders, trickle, tarpitChunks, endlessBody, noLength}

const (
	trickleBytes = 4
	trickleEvery = 250 * time.Millisecond
)

// pathClass sorts requests for hostileServer's counters.
type pathClass int

const (
	classLatest pathClass = iota // images/NAME/latest (and latest.ARCH)
	classIndex                   // images/NAME/N.index
	classChunk                   // chunks/...
	classOther                   // the mirrors file, catalog, versions, anything else
	numClasses
)

func (c pathClass) String() string {
	return [...]string{"latest", "index", "chunk", "other"}[c]
}

func classify(p string) pathClass {
	p = strings.TrimPrefix(p, "/")
	base := path.Base(p)
	switch {
	case strings.HasPrefix(p, "chunks/"):
		return classChunk
	case strings.HasPrefix(p, "images/") && (base == "latest" || strings.HasPrefix(base, "latest.")) &&
		!strings.HasSuffix(base, ".minisig"):
		return classLatest
	case strings.HasPrefix(p, "images/") && strings.HasSuffix(base, ".index"):
		return classIndex
	}
	return classOther
}

// hostileServer is an in-process HTTP server on 127.0.0.1 that fronts a store directory
// and misbehaves as its mode says. Every stall ends when the request's context does (the
// client gave up or the server is closing); the test's cleanup closes the server and
// every connection, and fails the test if a handler is still running after that.
type hostileServer struct {
	URL  string // base URL of the store: --mirror URL, or URL + "/images/NAME"
	Mode hostileMode
	Root string // the honest store directory

	t        testing.TB
	srv      *httptest.Server
	quit     chan struct{}
	mu       sync.Mutex
	override map[string][]byte // slash path below Root -> what is served instead
	counts   [numClasses]atomic.Int64
	active   atomic.Int64 // handlers running
}

// startHostile serves the store in root in the given mode. override maps store paths
// (as in "images/test/latest") to the bytes served for them instead of the file's: the
// metadata modes need it (hostileFixture.start fills it); any mode honours it.
func startHostile(t testing.TB, mode hostileMode, root string, override map[string][]byte) *hostileServer {
	t.Helper()
	h := &hostileServer{Mode: mode, Root: root, t: t, quit: make(chan struct{}), override: override}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	h.srv.Config.ErrorLog = nil
	h.srv.Start()
	h.URL = h.srv.URL
	t.Cleanup(h.close)
	return h
}

// close ends every stall, closes every connection and waits (bounded) for the handlers.
func (h *hostileServer) close() {
	select {
	case <-h.quit:
		return
	default:
	}
	close(h.quit)
	h.srv.CloseClientConnections()
	done := make(chan struct{})
	go func() { h.srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.t.Errorf("hostile server %s (%s): %d handlers still running 10 s after close", h.URL, h.Mode, h.active.Load())
	}
}

// Requests is how many requests of a class the server has received.
func (h *hostileServer) Requests(c pathClass) int64 { return h.counts[c].Load() }

// Counts says how many requests of each class arrived, for logs.
func (h *hostileServer) Counts() string {
	var b strings.Builder
	for c := range numClasses {
		if c > 0 {
			b.WriteString(" ")
		}
		b.WriteString(c.String() + "=" + strconv.FormatInt(h.counts[c].Load(), 10))
	}
	return b.String()
}

// content is what an honest server sends for p (nil, fs.ErrNotExist when it has none).
func (h *hostileServer) content(p string) ([]byte, error) {
	rel := strings.TrimPrefix(path.Clean("/"+p), "/")
	h.mu.Lock()
	b, ok := h.override[rel]
	h.mu.Unlock()
	if ok {
		return b, nil
	}
	if rel == "" || strings.HasPrefix(rel, ".") {
		return nil, fs.ErrNotExist
	}
	b, err := os.ReadFile(filepath.Join(h.Root, filepath.FromSlash(rel)))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // a directory, or missing: 404 either way
			return nil, fs.ErrNotExist
		}
	}
	return b, err
}

// stall waits until the client or the server goes away.
func (h *hostileServer) stall(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-h.quit:
	}
}

func (h *hostileServer) serve(w http.ResponseWriter, r *http.Request) {
	h.active.Add(1)
	defer h.active.Add(-1)
	class := classify(r.URL.Path)
	h.counts[class].Add(1)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}

	switch h.Mode {
	case html:
		page := "<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body><h1>It works!</h1>" +
			"<p>This page is served for " + r.URL.Path + ".</p></body></html>\n"
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		_, _ = w.Write([]byte(page))
		return
	case stallAfterHeaders:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		flush()
		h.stall(r)
		return
	case endlessBody:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		buf := bytes.Repeat([]byte("nowhere endless body "), 1600) // 33 KiB
		for {
			select {
			case <-r.Context().Done():
				return
			case <-h.quit:
				return
			default:
			}
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	case tarpitChunks:
		if class == classChunk {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
			flush()
			h.stall(r)
			return
		}
	}

	b, err := h.content(r.URL.Path)
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	switch h.Mode {
	case wrongBytes:
		if class == classChunk && len(b) > 0 {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0xa5
		}
	case trickle:
		w.WriteHeader(http.StatusOK)
		flush()
		tick := time.NewTicker(trickleEvery)
		defer tick.Stop()
		for len(b) > 0 {
			n := min(trickleBytes, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			flush()
			b = b[n:]
			select {
			case <-r.Context().Done():
				return
			case <-h.quit:
				return
			case <-tick.C:
			}
		}
		return
	case noLength:
		// Flushing before the body makes net/http send it chunked, without a length.
		w.WriteHeader(http.StatusOK)
		flush()
		for len(b) > 0 {
			n := min(16<<10, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			flush()
			b = b[n:]
		}
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// hostileFixture is a signed store for the hostile tests, with what the metadata modes
// serve instead of its files.
type hostileFixture struct {
	Store string   // the honest store: image "test", versions 1 and 2 (2 is latest)
	Want  [32]byte // sha256 of version 2's image
	Size  int      // its size

	staleLatest []byte // version 1's latest pointer, validly signed
	otherLatest []byte // image "other"'s latest pointer (version 1), validly signed
	otherIndex  []byte // image "other"'s 1.index
	keyLatest   []byte // a latest pointer of "test" version 3, signed by another key
	keyIndex    []byte // its index (3.index), signed by that key
}

// makeHostileFixture packs version 1 (seed) and version 2 (seed+1) of image "test" and
// version 1 of image "other" with secretKey, keeping version 1's pointer, and the same
// content as version 3 of "test" signed with a key of its own in another store.
func makeHostileFixture(t testing.TB, size int, seed uint64) *hostileFixture {
	t.Helper()
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	fx := &hostileFixture{Store: st, Size: size}
	pack := func(store, name string, data []byte, key string, extra ...string) {
		t.Helper()
		img := filepath.Join(dir, name+".img")
		if err := os.WriteFile(img, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"pack", img, "--store", store, "--name", name, "--progress", "never", "--sign-key", key}, extra...)
		if out, err := runNowhere(args...); err != nil {
			t.Fatalf("nowhere %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	read := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pack(st, "test", seededData(size, seed), secretKey)
	fx.staleLatest = read(filepath.Join(st, "images/test/latest"))
	v2 := seededData(size, seed+1)
	fx.Want = sha256Sum(v2)
	pack(st, "test", v2, secretKey)
	pack(st, "other", seededData(size, seed+2), secretKey)
	fx.otherLatest = read(filepath.Join(st, "images/other/latest"))
	fx.otherIndex = read(filepath.Join(st, "images/other/1.index"))

	// The attacker's key, and "test" version 3 with version 2's content in their store.
	attSecret, attPublic := filepath.Join(dir, "attacker.key"), filepath.Join(dir, "attacker.pub")
	if out, err := runNowhere("keygen", "--secret", attSecret, "--public", attPublic, "--no-password"); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	att := filepath.Join(dir, "attacker-store")
	for range 3 { // versions 1, 2, 3: a version above the honest one
		pack(att, "test", v2, attSecret)
	}
	fx.keyLatest = read(filepath.Join(att, "images/test/latest"))
	fx.keyIndex = read(filepath.Join(att, "images/test/3.index"))
	return fx
}

// start serves the fixture's store in mode, with the files the metadata modes swap in.
func (fx *hostileFixture) start(t testing.TB, mode hostileMode) *hostileServer {
	t.Helper()
	var override map[string][]byte
	switch mode {
	case staleMetadata:
		override = map[string][]byte{"images/test/latest": fx.staleLatest}
	case otherImage:
		// Image "other"'s signed pointer and index under the name "test".
		override = map[string][]byte{"images/test/latest": fx.otherLatest, "images/test/1.index": fx.otherIndex}
	case otherKey:
		override = map[string][]byte{"images/test/latest": fx.keyLatest, "images/test/3.index": fx.keyIndex}
	}
	return startHostile(t, mode, fx.Store, override)
}

// seededData is size bytes made from seed (makeStore's data): random blocks and
// repetitive ones, so chunks compress differently.
func seededData(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	data := make([]byte, size)
	for i := 0; i < size; i += 8192 {
		blk := data[i:min(i+8192, size)]
		if rng.IntN(3) > 0 {
			for j := range blk {
				blk[j] = byte(rng.Uint32())
			}
		} else {
			copy(blk, bytes.Repeat([]byte(strconv.Itoa(i)+" nowhere\n"), 1000))
		}
	}
	return data
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// runNowhere runs the binary under test to completion (bounded: 2 minutes).
func runNowhere(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, nowhereBin, args...).CombinedOutput()
}

// TestHostileServerModes checks the server itself with a plain HTTP client: what each
// mode sends for the latest pointer and a chunk, that the counters count, and that a
// stall ends when the client gives up.
func TestHostileServerModes(t *testing.T) {
	fx := makeHostileFixture(t, 1<<20, 40)
	chunks, err := filepath.Glob(filepath.Join(fx.Store, "chunks", "*", "*.cacnk"))
	if err != nil || len(chunks) == 0 {
		t.Fatalf("no chunks in %s (%v)", fx.Store, err)
	}
	chunkPath, _ := filepath.Rel(fx.Store, chunks[0])
	chunkPath = filepath.ToSlash(chunkPath)
	honestChunk, _ := os.ReadFile(chunks[0])
	honestLatest, _ := os.ReadFile(filepath.Join(fx.Store, "images/test/latest"))

	type answer struct {
		status int
		ctype  string
		length int64
		body   []byte
		err    error
	}
	get := func(url string, limit time.Duration, max int64) answer {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return answer{err: err}
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, max))
		return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, body, err}
	}
	for _, mode := range append([]hostileMode{honest}, hostileModes...) {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			h := fx.start(t, mode)
			latest := get(h.URL+"/images/test/latest", 2*time.Second, 1<<20)
			chunk := get(h.URL+"/"+chunkPath, 2*time.Second, 1<<20)
			switch mode {
			case honest, tarpitChunks, wrongBytes:
				if latest.err != nil || !bytes.Equal(latest.body, honestLatest) || latest.length != int64(len(honestLatest)) {
					t.Errorf("latest: %v, %d bytes of length %d, want the store's", latest.err, len(latest.body), latest.length)
				}
			case staleMetadata:
				if !bytes.Equal(latest.body, fx.staleLatest) {
					t.Errorf("latest is not version 1's: %q", latest.body)
				}
			case otherImage:
				if !bytes.Contains(latest.body, []byte("name other\n")) {
					t.Errorf("latest is not image other's: %q", latest.body)
				}
			case otherKey:
				if !bytes.Equal(latest.body, fx.keyLatest) {
					t.Errorf("latest is not the attacker's: %q", latest.body)
				}
			case html:
				if latest.status != 200 || !strings.HasPrefix(latest.ctype, "text/html") || !bytes.Contains(chunk.body, []byte("<html>")) {
					t.Errorf("html: %d %q %q", latest.status, latest.ctype, chunk.body)
				}
			case stallAfterHeaders:
				if latest.status != 200 || !errors.Is(latest.err, context.DeadlineExceeded) || len(latest.body) != 0 {
					t.Errorf("latest: %d, %v with %d bytes, want 200 then a stall until the deadline", latest.status, latest.err, len(latest.body))
				}
			case trickle:
				// 2 s at 4 bytes per 250 ms: a few dozen bytes, then the deadline.
				if latest.status != 200 || !errors.Is(latest.err, context.DeadlineExceeded) || len(latest.body) == 0 || len(latest.body) > 64 {
					t.Errorf("latest: %v with %d bytes, want a trickle cut by the deadline", latest.err, len(latest.body))
				}
			case endlessBody:
				if latest.err != nil || latest.length != -1 || len(latest.body) != 1<<20 {
					t.Errorf("latest: %v, length %d, %d bytes read, want a body past any limit", latest.err, latest.length, len(latest.body))
				}
			case noLength:
				if latest.err != nil || !bytes.Equal(latest.body, honestLatest) || latest.length != -1 ||
					chunk.err != nil || !bytes.Equal(chunk.body, honestChunk) || chunk.length != -1 {
					t.Errorf("noLength: %v/%v, lengths %d/%d, want the store's bytes without a length", latest.err, chunk.err, latest.length, chunk.length)
				}
			}
			switch mode {
			case honest, staleMetadata, otherImage, otherKey:
				if chunk.err != nil || !bytes.Equal(chunk.body, honestChunk) {
					t.Errorf("chunk: %v, want the store's", chunk.err)
				}
			case wrongBytes:
				if chunk.err != nil || len(chunk.body) != len(honestChunk) || bytes.Equal(chunk.body, honestChunk) {
					t.Errorf("chunk: %v, want the same length, other bytes", chunk.err)
				}
			case stallAfterHeaders, tarpitChunks:
				if chunk.status != 200 || !errors.Is(chunk.err, context.DeadlineExceeded) || len(chunk.body) != 0 {
					t.Errorf("chunk: %d, %v with %d bytes, want 200 then a stall until the deadline", chunk.status, chunk.err, len(chunk.body))
				}
			case trickle:
				// 2 s at 4 bytes per 250 ms: a few dozen bytes, then the deadline.
				if !errors.Is(chunk.err, context.DeadlineExceeded) || len(chunk.body) == 0 || len(chunk.body) > 64 {
					t.Errorf("chunk: %v with %d bytes, want a trickle cut by the deadline", chunk.err, len(chunk.body))
				}
			case endlessBody:
				if chunk.err != nil || chunk.length != -1 || len(chunk.body) != 1<<20 {
					t.Errorf("chunk: %v, length %d, %d bytes read, want a body past any limit", chunk.err, chunk.length, len(chunk.body))
				}
			}
			if h.Requests(classLatest) != 1 || h.Requests(classChunk) != 1 || h.Requests(classIndex) != 0 {
				t.Errorf("counters %s, want latest=1 chunk=1 index=0", h.Counts())
			}
			// Every handler ends once its client is gone.
			deadline := time.Now().Add(5 * time.Second)
			for h.active.Load() != 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := h.active.Load(); n != 0 {
				t.Errorf("%d handlers still running 5 s after their clients left", n)
			}
		})
	}
}
