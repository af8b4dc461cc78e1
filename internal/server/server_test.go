package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

const secretText = "TOP SECRET: outside the store"

// fixture is a store with one chunk, one image (index + latest) and a secret file next to
// the store directory, served by nowhere's handler on 127.0.0.1.
type fixture struct {
	dir, parent string
	url         string
	raw         []byte
	id          chunk.ID
	index       []byte
	latest      []byte
	logMu       sync.Mutex
	log         []string
}

func newFixture(t *testing.T, withLog bool) *fixture {
	t.Helper()
	f := &fixture{parent: t.TempDir()}
	f.dir = filepath.Join(f.parent, "store")
	d, err := store.CreateDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	plain := make([]byte, 64<<10)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(plain) // incompressible: the chunk file is 64 KiB too
	f.id = chunk.Sum(plain)
	f.raw = chunk.Encode(nil, plain)
	ctx := context.Background()
	if _, err := d.PutChunk(ctx, f.id, f.raw); err != nil {
		t.Fatal(err)
	}
	f.index = bytes.Repeat([]byte("index"), 1000)
	f.latest = []byte("nowhere-latest 1\nname a\nversion 1\n")
	for name, b := range map[string][]byte{"images/a/1.index": f.index, "images/a/latest": f.latest, "mirrors": []byte("http://m/\n")} {
		if err := d.PutFile(ctx, name, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.parent, "secret"), []byte(secretText), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	h := server.Handler(root)
	if withLog {
		h = server.AccessLog(h, func(format string, args ...any) {
			f.logMu.Lock()
			defer f.logMu.Unlock()
			f.log = append(f.log, fmt.Sprintf(format, args...))
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); root.Close() })
	f.url = srv.URL
	return f
}

func (f *fixture) chunkPath() string { return "/" + store.ChunkPath(f.id) }

func (f *fixture) do(t *testing.T, method, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// raw sends a request line exactly as given (no client-side path cleaning).
func (f *fixture) rawGet(t *testing.T, target string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: store\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestGetAndHead(t *testing.T) {
	f := newFixture(t, false)
	resp, body := f.do(t, "GET", f.chunkPath())
	if resp.StatusCode != 200 || !bytes.Equal(body, f.raw) {
		t.Fatalf("GET chunk: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp.Header.Get("Content-Type") != "application/octet-stream" || resp.ContentLength != int64(len(f.raw)) {
		t.Fatalf("GET chunk headers: %v", resp.Header)
	}
	if resp.Header.Get("Content-Encoding") != "" {
		t.Fatal("a chunk was served with a Content-Encoding")
	}
	resp, body = f.do(t, "HEAD", f.chunkPath())
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(f.raw)) {
		t.Fatalf("HEAD chunk: %d, %d body bytes, length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
	resp, body = f.do(t, "GET", "/images/a/1.index")
	if resp.StatusCode != 200 || !bytes.Equal(body, f.index) || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET index: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body = f.do(t, "GET", "/images/a/latest")
	if resp.StatusCode != 200 || !bytes.Equal(body, f.latest) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET latest: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	f := newFixture(t, false)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "MKCOL"} {
		for _, p := range []string{f.chunkPath(), "/images/a/latest", "/images/b/new"} {
			resp, _ := f.do(t, m, p)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405 with Allow: GET, HEAD", m, p, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(f.dir, "images/a/latest")); !bytes.Equal(b, f.latest) {
		t.Fatal("a refused request changed the store")
	}
	if _, err := os.Stat(filepath.Join(f.dir, "images/b")); err == nil {
		t.Fatal("a refused request created a file")
	}
}

func TestRange(t *testing.T) {
	f := newFixture(t, false)
	n := len(f.raw)
	cases := []struct {
		rng        string
		start, end int // expected bytes [start, end)
	}{
		{"bytes=0-99", 0, 100},
		{"bytes=10-19", 10, 20},
		{"bytes=100-", 100, n},
		{"bytes=-50", n - 50, n},
		{fmt.Sprintf("bytes=%d-%d", n-1, n+1000), n - 1, n},
	}
	for _, c := range cases {
		resp, body := f.do(t, "GET", f.chunkPath(), "Range", c.rng)
		want := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end-1, n)
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, f.raw[c.start:c.end]) || resp.Header.Get("Content-Range") != want {
			t.Errorf("Range %s: %d, %d bytes, Content-Range %q; want 206, %d bytes, %q",
				c.rng, resp.StatusCode, len(body), resp.Header.Get("Content-Range"), c.end-c.start, want)
		}
	}
	resp, _ := f.do(t, "GET", f.chunkPath(), "Range", fmt.Sprintf("bytes=%d-", n+10))
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %d, want 416", resp.StatusCode)
	}
	// Ranges work on indexes too (a client may fetch a large index in parts).
	resp, body := f.do(t, "GET", "/images/a/1.index", "Range", "bytes=5-9")
	if resp.StatusCode != 206 || string(body) != "index" {
		t.Errorf("index range: %d %q", resp.StatusCode, body)
	}
}

func TestETag(t *testing.T) {
	f := newFixture(t, false)
	resp, _ := f.do(t, "GET", f.chunkPath())
	if et := resp.Header.Get("ETag"); et != `"`+f.id.String()+`"` {
		t.Fatalf("chunk ETag %q, want the chunk ID in quotes", et)
	}
	for _, p := range []string{f.chunkPath(), "/images/a/1.index", "/images/a/latest"} {
		resp, _ := f.do(t, "GET", p)
		et := resp.Header.Get("ETag")
		if et == "" || !strings.HasPrefix(et, `"`) {
			t.Fatalf("%s: ETag %q", p, et)
		}
		resp, body := f.do(t, "GET", p, "If-None-Match", et)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("%s with If-None-Match %s: %d, %d bytes; want 304, empty", p, et, resp.StatusCode, len(body))
		}
		resp, _ = f.do(t, "GET", p, "If-None-Match", `"something-else"`)
		if resp.StatusCode != 200 {
			t.Errorf("%s with another ETag: %d, want 200", p, resp.StatusCode)
		}
	}
	// When latest moves, its ETag changes, so a cache revalidating gets the new pointer.
	resp, _ = f.do(t, "GET", "/images/a/latest")
	old := resp.Header.Get("ETag")
	d, _ := store.OpenDir(f.dir)
	defer d.Close()
	if err := d.PutFile(context.Background(), "images/a/latest", []byte("nowhere-latest 1\nname a\nversion 2\n")); err != nil {
		t.Fatal(err)
	}
	resp, body := f.do(t, "GET", "/images/a/latest", "If-None-Match", old)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "version 2") || resp.Header.Get("ETag") == old {
		t.Fatalf("after latest moved: %d, ETag %q (was %q)", resp.StatusCode, resp.Header.Get("ETag"), old)
	}
}

const immutable = "public, max-age=31536000, immutable"

func TestCacheControl(t *testing.T) {
	f := newFixture(t, false)
	for p, want := range map[string]string{
		f.chunkPath():       immutable,
		"/images/a/1.index": immutable,
		"/images/a/latest":  "public, max-age=10",
		"/mirrors":          "public, max-age=60",
	} {
		resp, _ := f.do(t, "GET", p)
		if got := resp.Header.Get("Cache-Control"); got != want {
			t.Errorf("%s: Cache-Control %q, want %q", p, got, want)
		}
		resp, _ = f.do(t, "GET", p, "Range", "bytes=0-3")
		if got := resp.Header.Get("Cache-Control"); got != want {
			t.Errorf("%s (range): Cache-Control %q, want %q", p, got, want)
		}
	}
	// An answer that is not the file must not be cached for a year: a chunk that is
	// missing now (a mirror still syncing) must be fetchable once it arrives.
	for _, p := range []string{"/chunks/0000/" + strings.Repeat("0", 64) + ".cacnk", "/images/b/7.index", "/images/a/.tmp-1.index-0011"} {
		resp, _ := f.do(t, "GET", p)
		if cc := resp.Header.Get("Cache-Control"); strings.Contains(cc, "immutable") || strings.Contains(cc, "31536000") {
			t.Errorf("%s: %d with Cache-Control %q", p, resp.StatusCode, cc)
		}
	}
	for p, want := range map[string]string{
		"chunks/abcd/x.cacnk": immutable, "images/n/12.index": immutable, "images/n/latest": "public, max-age=10",
		"images/n/latest.arm64": "public, max-age=10", "images/n/latest.minisig": "public, max-age=10",
		"images/n/latest.amd64.minisig": "public, max-age=10", "images/n/versions": "public, max-age=60",
		"mirrors": "public, max-age=60", "chunks/abcd/x.txt": "public, max-age=60", "images/n/latest.index": immutable,
	} {
		if got := server.CacheControl(p); got != want {
			t.Errorf("CacheControl(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestNotFound(t *testing.T) {
	f := newFixture(t, false)
	if err := os.WriteFile(filepath.Join(f.dir, "images/a/.tmp-1.index-abcdef"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"/chunks/0000/" + strings.Repeat("0", 64) + ".cacnk", // missing chunk
		"/images/b/latest",                       // missing image
		"/images/a/2.index",                      // missing version
		"/", "/chunks/", "/images/a/", "/images", // directories: no listings
		"/images/a/.tmp-1.index-abcdef", // a file being written
	} {
		resp, body := f.do(t, "GET", p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (%q)", p, resp.StatusCode, body)
		}
		if strings.Contains(string(body), "1.index") || strings.Contains(string(body), "half") {
			t.Errorf("GET %s leaks a listing or content: %q", p, body)
		}
	}
}

func TestNoTraversal(t *testing.T) {
	f := newFixture(t, false)
	for _, target := range []string{
		"/../secret", "/images/../../secret", "/chunks/../../secret", "/./../secret",
		"/%2e%2e/secret", "/%2E%2E/secret", "/images/%2e%2e/%2e%2e/secret", "/images/..%2f..%2fsecret",
		"/..\\secret", "/images\\..\\..\\secret", "/%5c..%5csecret",
		"/secret%00", "/images/a/latest%00", "/%00../secret",
		"//../secret",
	} {
		resp, body := f.rawGet(t, target)
		if resp.StatusCode != 400 && resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 400 or 404", target, resp.StatusCode)
		}
		if strings.Contains(string(body), secretText) {
			t.Errorf("GET %s: served the file outside the store", target)
		}
	}
}

func TestNoSymlinksOut(t *testing.T) {
	f := newFixture(t, false)
	secret := filepath.Join(f.parent, "secret")
	links := map[string]string{
		"images/a/99.index": secret,            // absolute, out
		"images/a/98.index": "../../../secret", // relative, out
		"images/out":        f.parent,          // a directory out
		"images/a/alias":    "1.index",         // inside the store: fine
	}
	for link, target := range links {
		if err := os.Symlink(target, filepath.Join(f.dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/images/a/99.index", "/images/a/98.index", "/images/out/secret"} {
		resp, body := f.do(t, "GET", p)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), secretText) {
			t.Errorf("GET %s (symlink out of the store): %d %q; want 404", p, resp.StatusCode, body)
		}
	}
	resp, body := f.do(t, "GET", "/images/a/alias")
	if resp.StatusCode != 200 || !bytes.Equal(body, f.index) {
		t.Errorf("a symlink inside the store: %d", resp.StatusCode)
	}
}

func TestAccessLog(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, "GET", f.chunkPath())
	f.do(t, "GET", f.chunkPath(), "Range", "bytes=0-99")
	f.do(t, "HEAD", "/images/a/latest")
	f.do(t, "GET", "/images/zzz/latest")
	f.do(t, "DELETE", "/images/a/latest")
	f.logMu.Lock()
	defer f.logMu.Unlock()
	if len(f.log) != 5 {
		t.Fatalf("%d log lines for 5 requests:\n%s", len(f.log), strings.Join(f.log, "\n"))
	}
	want := []struct {
		method, path  string
		status, bytes int
		rng           string
	}{
		{"GET", f.chunkPath(), 200, len(f.raw), "-"},
		{"GET", f.chunkPath(), 206, 100, "bytes=0-99"},
		{"HEAD", "/images/a/latest", 200, 0, "-"},
		{"GET", "/images/zzz/latest", 404, -1, "-"},
		{"DELETE", "/images/a/latest", 405, -1, "-"},
	}
	for i, w := range want {
		fields := strings.Fields(f.log[i])
		if len(fields) != 7 || !strings.HasPrefix(fields[0], "127.0.0.1:") || fields[1] != w.method || fields[2] != w.path ||
			fields[3] != strconv.Itoa(w.status) || fields[5] != w.rng {
			t.Errorf("log line %d: %q; want %s %s %d ... %s", i, f.log[i], w.method, w.path, w.status, w.rng)
			continue
		}
		if n, err := strconv.Atoi(fields[4]); err != nil || (w.bytes >= 0 && n != w.bytes) || (w.bytes < 0 && n <= 0) {
			t.Errorf("log line %d: %s bytes, want %d", i, fields[4], w.bytes)
		}
	}
}

// Only the store's layout is served: a secret key, its password file or any other file
// left in the store's directory is a 404, and so is a hidden name in the layout.
func TestOnlyTheLayout(t *testing.T) {
	f := newFixture(t, false)
	for name, text := range map[string]string{
		"publisher.key": "SECRET KEY", "password": "hunter2", "notes.txt": "private",
		"images/a/publisher.key": "SECRET KEY", "boot/.env": "TOKEN=1", ".nowhere-lock": "",
	} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(f.dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/publisher.key", "/password", "/notes.txt", "/images/a/publisher.key", "/boot/.env", "/.nowhere-lock"} {
		resp, body := f.do(t, "GET", p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (%q)", p, resp.StatusCode, body)
		}
	}
	if resp, _ := f.do(t, "GET", "/images/a/latest"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /images/a/latest: %d, want 200", resp.StatusCode)
	}
	for name, want := range map[string]bool{
		"mirrors": true, "chunks/ab/x.cacnk": true, "images/a/1.index": true, "boot/vmlinuz": true,
		"chunks": false, "secret": false, "images/a/x.key": false, "mirrors/x": false,
		"m1/chunks/ab/x.cacnk": true, "m1/images/a/latest": true, "m1/mirrors": true,
		"m1/secret": false, "m1/chunks": false, "m1/.lock": false,
	} {
		if got := server.InLayout(name); got != want {
			t.Errorf("InLayout(%q) = %v, want %v", name, got, want)
		}
	}
}
