package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawResponse is an HTTP answer read off the wire.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// rawRequest sends one request with the path exactly as given (no client-side cleaning of
// "..", no re-encoding) on a fresh connection and reads the answer.
func rawRequest(t *testing.T, base, method, path string, header map[string]string) rawResponse {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, host)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: body}
}

const immutable = "public, max-age=31536000, immutable"

// serveFixture is a copy of the shared store with traps around and inside it: a secret
// file beside it, symlinks from inside pointing at it, a pack temporary file, a FIFO.
type serveFixture struct {
	store, secret string
	chunk         string // URL path of a chunk
	chunkBody     []byte
	index, latest string // URL paths
}

func newServeFixture(t *testing.T) *serveFixture {
	t.Helper()
	f := getFixture(t)
	store := copyStore(t, f.store)
	sf := &serveFixture{store: store, secret: filepath.Join(filepath.Dir(store), "secret.txt")}
	if err := os.WriteFile(sf.secret, []byte("TOP-SECRET-OUTSIDE-THE-STORE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ix := loadIndex(t, store, "ext4", 1)
	stored := entriesOverlapping(ix, 0, ix.Size)
	sf.chunk = chunkURLPath(stored[len(stored)/2])
	var err error
	if sf.chunkBody, err = os.ReadFile(filepath.Join(store, sf.chunk)); err != nil {
		t.Fatal(err)
	}
	sf.index, sf.latest = "/images/ext4/1.index", "/images/ext4/latest"
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("../../secret.txt", filepath.Join(store, "images", "ext4", "escape")))
	must(os.MkdirAll(filepath.Join(store, "chunks", "ffff"), 0o755))
	must(os.Symlink(sf.secret, filepath.Join(store, "chunks", "ffff", strings.Repeat("f", 64)+".cacnk")))
	must(syscall.Mkfifo(filepath.Join(store, "images", "ext4", "fifo"), 0o644))
	must(os.WriteFile(filepath.Join(store, "chunks", "ffff", ".tmp-"+strings.Repeat("e", 64)+".cacnk-0a1b2c"), []byte("partial"), 0o644))
	return sf
}

// TestServersAnswerAlike checks the HTTP contract a store server must keep, with the same
// table against nowhere serve and nginx with docs/nginx.md: GET and HEAD only, Range,
// ETag and 304, Cache-Control per path, 404 for what is missing (and not cached for a
// year), no listings, no way out of the store by "..", encoded "..", or symlinks.
func TestServersAnswerAlike(t *testing.T) {
	sf := newServeFixture(t)
	size := len(sf.chunkBody)
	type check struct {
		name            string
		method, path    string
		header          map[string]string
		status          []int  // any of these
		body            []byte // nil: not checked
		cacheControl    string // "": not checked; "short": public, max-age of 1..300 s
		notCacheForever bool
	}
	checks := []check{
		{name: "GET chunk", method: "GET", path: sf.chunk, status: []int{200}, body: sf.chunkBody, cacheControl: immutable},
		{name: "HEAD chunk", method: "HEAD", path: sf.chunk, status: []int{200}, body: []byte{}, cacheControl: immutable},
		{name: "GET index", method: "GET", path: sf.index, status: []int{200}, body: fileBytes(t, sf.store, sf.index), cacheControl: immutable},
		{name: "GET latest", method: "GET", path: sf.latest, status: []int{200}, body: fileBytes(t, sf.store, sf.latest), cacheControl: "short"},
		{name: "Range", method: "GET", path: sf.chunk, header: map[string]string{"Range": "bytes=100-1099"}, status: []int{206},
			body: sf.chunkBody[100:1100], cacheControl: immutable},
		{name: "suffix Range", method: "GET", path: sf.chunk, header: map[string]string{"Range": "bytes=-10"}, status: []int{206},
			body: sf.chunkBody[size-10:]},
		{name: "Range past the end", method: "GET", path: sf.chunk, header: map[string]string{"Range": fmt.Sprintf("bytes=%d-", size)},
			status: []int{416}},
		{name: "POST", method: "POST", path: sf.chunk, status: []int{405}},
		{name: "PUT", method: "PUT", path: sf.chunk, status: []int{405}},
		{name: "DELETE", method: "DELETE", path: sf.chunk, status: []int{405}},
		{name: "missing chunk", method: "GET", path: "/chunks/0000/" + strings.Repeat("0", 64) + ".cacnk", status: []int{404},
			notCacheForever: true},
		{name: "missing image", method: "GET", path: "/images/nosuch/latest", status: []int{404}, notCacheForever: true},
		{name: "listing /", method: "GET", path: "/", status: []int{403, 404}},
		{name: "listing /chunks/", method: "GET", path: "/chunks/", status: []int{403, 404}},
		{name: "temporary file", method: "GET", path: "/chunks/ffff/.tmp-" + strings.Repeat("e", 64) + ".cacnk-0a1b2c", status: []int{400, 403, 404}},
		{name: "FIFO", method: "GET", path: "/images/ext4/fifo", status: []int{403, 404}},
		{name: "symlink out of the store", method: "GET", path: "/images/ext4/escape", status: []int{403, 404}},
		{name: "chunk symlink out of the store", method: "GET", path: "/chunks/ffff/" + strings.Repeat("f", 64) + ".cacnk", status: []int{403, 404}},
	}
	for _, p := range []string{
		"/../secret.txt", "/chunks/../../secret.txt", "/images/ext4/../../../secret.txt",
		"/%2e%2e/secret.txt", "/chunks/%2e%2e/%2e%2e/secret.txt", "/images/..%2f..%2fsecret.txt",
		"/images/%2e%2e%2f%2e%2e%2fsecret.txt", "/..\\secret.txt", "/chunks/..%5c..%5csecret.txt",
	} {
		checks = append(checks, check{name: "traversal " + p, method: "GET", path: p, status: []int{400, 403, 404}})
	}
	secret := []byte("TOP-SECRET")
	shortMaxAge := regexp.MustCompile(`^public, max-age=(\d+)$`)

	for _, sk := range serverKinds {
		t.Run(sk.name, func(t *testing.T) {
			srv := sk.start(t, sf.store)
			for _, c := range checks {
				r := rawRequest(t, srv.url, c.method, c.path, c.header)
				ok := false
				for _, s := range c.status {
					ok = ok || r.status == s
				}
				if !ok {
					t.Errorf("%s: %s %s: status %d, want one of %v", c.name, c.method, c.path, r.status, c.status)
				}
				if bytes.Contains(r.body, secret) {
					t.Errorf("%s: %s %s: served the file outside the store", c.name, c.method, c.path)
				}
				if c.body != nil && !bytes.Equal(r.body, c.body) {
					t.Errorf("%s: body of %d bytes, want %d", c.name, len(r.body), len(c.body))
				}
				cc := r.header.Get("Cache-Control")
				t.Logf("%s: %s %s: %d, Cache-Control %q", c.name, c.method, c.path, r.status, cc)
				switch {
				case c.cacheControl == "short":
					m := shortMaxAge.FindStringSubmatch(cc)
					if n, _ := strconv.Atoi(firstOr(m, 1)); m == nil || n < 1 || n > 300 {
						t.Errorf("%s: Cache-Control %q, want public with a max-age of at most 5 minutes", c.name, cc)
					}
				case c.cacheControl != "" && cc != c.cacheControl:
					t.Errorf("%s: Cache-Control %q, want %q", c.name, cc, c.cacheControl)
				}
				if c.notCacheForever && (strings.Contains(cc, "immutable") || strings.Contains(cc, "31536000")) {
					t.Errorf("%s: a %d answer says Cache-Control %q: caches would keep the miss for a year", c.name, r.status, cc)
				}
				if c.method == "HEAD" && r.header.Get("Content-Length") != strconv.Itoa(size) {
					t.Errorf("%s: Content-Length %q, want %d", c.name, r.header.Get("Content-Length"), size)
				}
				if c.status[0] == 206 {
					if cr := r.header.Get("Content-Range"); !strings.HasSuffix(cr, "/"+strconv.Itoa(size)) || !strings.HasPrefix(cr, "bytes ") {
						t.Errorf("%s: Content-Range %q", c.name, cr)
					}
				}
			}
			if got := fileBytes(t, sf.store, sf.chunk); !bytes.Equal(got, sf.chunkBody) {
				t.Errorf("the chunk changed after POST/PUT/DELETE")
			}

			// ETag and conditional requests: an unchanged file answers 304 with no body,
			// still carrying its caching headers.
			for _, p := range []string{sf.chunk, sf.index, sf.latest} {
				etag := rawRequest(t, srv.url, "GET", p, nil).header.Get("ETag")
				if etag == "" {
					t.Errorf("GET %s: no ETag", p)
					continue
				}
				r := rawRequest(t, srv.url, "GET", p, map[string]string{"If-None-Match": etag})
				if r.status != 304 || len(r.body) != 0 {
					t.Errorf("GET %s If-None-Match %s: status %d with %d bytes, want 304 and none", p, etag, r.status, len(r.body))
				}
				if p != sf.latest && r.header.Get("Cache-Control") != immutable {
					t.Errorf("304 for %s: Cache-Control %q, want %q", p, r.header.Get("Cache-Control"), immutable)
				}
				if r := rawRequest(t, srv.url, "GET", p, map[string]string{"If-None-Match": `"something-else"`}); r.status != 200 {
					t.Errorf("GET %s with a stale ETag: status %d, want 200", p, r.status)
				}
			}
		})
	}
}

func firstOr(m []string, i int) string {
	if len(m) > i {
		return m[i]
	}
	return ""
}

func fileBytes(t *testing.T, store, urlPath string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(store, filepath.FromSlash(urlPath)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServeFinishesInFlightRequestsOnSIGTERM starts a 64 MiB download from nowhere serve
// with a client that pauses after the first 64 KiB, sends SIGTERM, and checks that the server stops taking
// new connections, still delivers the whole file, and then exits with status 0.
func TestServeFinishesInFlightRequestsOnSIGTERM(t *testing.T) {
	getFixture(t)
	store := filepath.Join(t.TempDir(), "store")
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i * 7 / 4096)
	}
	if err := os.MkdirAll(filepath.Join(store, "images", "big"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "images", "big", "1.index"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startNowhereServe(t, store)
	host := strings.TrimPrefix(srv.url, "http://")
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The client reads 64 KiB and stops: 64 MiB is far more than the socket buffers
	// hold, so the server stays blocked writing the response until the client reads on.
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(c, "GET /images/big/1.index HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return strings.Contains(readFile(srv.errPath), "finishing requests in flight") }) {
		t.Fatalf("nowhere serve did not acknowledge SIGTERM (running: %v, exit: %v):\n%s", srv.running(), srv.exitErr, readFile(srv.errPath))
	}
	refused := waitFor(10*time.Second, func() bool {
		c2, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c2.Close()
		}
		return err != nil
	})
	if !refused {
		t.Errorf("nowhere serve still accepts connections after SIGTERM")
	}
	if !srv.running() {
		t.Fatalf("nowhere serve exited with a request in flight: %v", srv.exitErr)
	}

	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the rest of the in-flight download: %v", err)
	}
	got := append(head, rest...)
	if len(got) != len(big) || sha256.Sum256(got) != sha256.Sum256(big) {
		t.Fatalf("in-flight download: got %d bytes, want the whole %d-byte file", len(got), len(big))
	}
	select {
	case <-srv.done:
	case <-time.After(20 * time.Second):
		t.Fatal("nowhere serve did not exit after its last request")
	}
	if srv.exitErr != nil {
		t.Errorf("nowhere serve exit after SIGTERM: %v, want status 0\n%s", srv.exitErr, readFile(srv.errPath))
	}
}

// TestServeStopsCleanlyOnEarlySIGTERM sends SIGTERM the moment nowhere serve says it is
// serving, 60 times: each time it must shut down and exit 0 (it used to catch signals only
// after saying so, and a SIGTERM in between killed it about one time in twenty).
func TestServeStopsCleanlyOnEarlySIGTERM(t *testing.T) {
	f := getFixture(t)
	for i := range 60 {
		srv := startNowhereServe(t, f.store)
		if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := srv.stop(); err != nil {
			t.Fatalf("run %d: SIGTERM right after start-up: %v, want exit status 0", i, err)
		}
	}
}
