package store_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// hostile starts a real HTTP server on 127.0.0.1 whose handler misbehaves.
func hostile(t *testing.T, h http.HandlerFunc) *store.HTTP {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return newHTTP(t, srv.URL)
}

// An endless response is cut off at the limit: the client reads at most a little more
// than it expects, whatever the server sends.
func TestHTTPEndlessData(t *testing.T) {
	for _, declare := range []bool{false, true} {
		t.Run("content-length="+strconv.FormatBool(declare), func(t *testing.T) {
			var sent atomic.Int64
			finished := make(chan struct{})
			s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
				defer close(finished)
				if declare {
					w.Header().Set("Content-Length", strconv.Itoa(1<<30))
				}
				block := make([]byte, 64<<10)
				for i := 0; i < (1<<30)/len(block); i++ { // 1 GiB at most
					n, err := w.Write(block)
					sent.Add(int64(n))
					if err != nil {
						return
					}
				}
			})
			ref := chunk.Ref{ID: chunk.Sum([]byte("x")), Len: 100 << 10, Stored: 100 << 10}
			_, err := s.Chunk(context.Background(), ref)
			var tl *store.TooLargeError
			if !errors.As(err, &tl) || tl.Limit != 100<<10 {
				t.Fatalf("endless response: %v; want *TooLargeError at 100 KiB", err)
			}
			select {
			case <-finished:
			case <-time.After(20 * time.Second):
				t.Fatal("server still sending: the client kept the connection open")
			}
			t.Logf("server managed to send %d KiB before the client hung up", sent.Load()>>10)
			if sent.Load() > 64<<20 {
				t.Fatalf("server sent %d MiB: the client read far past its limit", sent.Load()>>20)
			}
		})
	}
}

// A server that stops sending does not hold a cancelled read.
func TestHTTPStalledServerCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = w.Write([]byte("a few bytes"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(30 * time.Second):
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, err := s.Chunk(ctx, chunk.Ref{ID: chunk.Sum([]byte("x")), Len: 1000})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stalled read after cancel: %v; want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read from a stalled server ignored cancellation")
	}
}

func TestHTTPStatuses(t *testing.T) {
	var code atomic.Int64
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		switch c := int(code.Load()); c {
		case 299: // claims more than it sends, then hangs up
			w.Header().Set("Content-Length", "1000")
			_, _ = w.Write([]byte("short"))
		default:
			w.WriteHeader(c)
			_, _ = w.Write([]byte("body"))
		}
	})
	ref := chunk.Ref{ID: chunk.Sum([]byte("y")), Len: 1}
	for _, c := range []int{404, 410} {
		code.Store(int64(c))
		if _, err := s.Chunk(context.Background(), ref); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("HTTP %d: %v; want ErrNotFound", c, err)
		}
	}
	for _, c := range []int{206, 301, 403, 500, 503} {
		code.Store(int64(c))
		_, err := s.Chunk(context.Background(), ref)
		var se *store.StatusError
		if !errors.As(err, &se) || se.Code != c || !strings.Contains(err.Error(), store.ChunkPath(ref.ID)) {
			t.Errorf("HTTP %d: %v; want *StatusError naming the URL", c, err)
		}
	}
	code.Store(299)
	if _, err := s.Chunk(context.Background(), ref); err == nil {
		t.Error("a response shorter than its Content-Length was accepted")
	}
}

func TestNewHTTP(t *testing.T) {
	for _, bad := range []string{"", "ftp://host/store", "http://", "//host/store", "/local/dir", "http://[::1", "file:///tmp"} {
		if _, err := store.NewHTTP(bad, nil); err == nil {
			t.Errorf("NewHTTP(%q) accepted", bad)
		}
	}
	for base, want := range map[string]string{
		"http://127.0.0.1:8080":               "http://127.0.0.1:8080/chunks/abcd/x.cacnk",
		"http://127.0.0.1:8080/":              "http://127.0.0.1:8080/chunks/abcd/x.cacnk",
		"https://mirror.example/a/store":      "https://mirror.example/a/store/chunks/abcd/x.cacnk",
		"https://mirror.example/a/store/?q#f": "https://mirror.example/a/store/chunks/abcd/x.cacnk",
	} {
		h, err := store.NewHTTP(base, nil)
		if err != nil {
			t.Fatalf("NewHTTP(%q): %v", base, err)
		}
		if got := h.URL("chunks/abcd/x.cacnk"); got != want {
			t.Errorf("%s: URL = %q, want %q", base, got, want)
		}
		if strings.HasSuffix(h.String(), "/") {
			t.Errorf("String() = %q ends in a slash", h.String())
		}
	}
}
