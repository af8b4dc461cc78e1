package store

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Bodies with a length, without one (chunked), too long, and cut short by the server.
func TestHTTPFileBodies(t *testing.T) {
	body := bytes.Repeat([]byte("nowhere!"), 10000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sized":
			w.Header().Set("Content-Length", "80000")
			w.Write(body)
		case "/chunked":
			w.(http.Flusher).Flush() // no Content-Length: chunked encoding
			w.Write(body)
		case "/short":
			conn, rw, _ := w.(http.Hijacker).Hijack()
			rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 80000\r\n\r\n")
			rw.Write(body[:1000])
			rw.Flush()
			conn.Close()
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	h, err := NewHTTP(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"sized", "chunked"} {
		got, err := h.File(ctx, name, 1<<20)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%s: %d bytes, err %v; want the %d-byte body", name, len(got), err, len(body))
		}
		var tl *TooLargeError
		if _, err := h.File(ctx, name, 1000); !errors.As(err, &tl) {
			t.Fatalf("%s with a 1000-byte limit: err %v, want TooLargeError", name, err)
		}
	}
	if _, err := h.File(ctx, "short", 1<<20); err == nil || !strings.Contains(err.Error(), "got 1000 of 80000 bytes") {
		t.Fatalf("short body: err %v, want it to say 1000 of 80000 bytes", err)
	}
	if _, err := h.File(ctx, "missing", 1<<20); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: err %v, want ErrNotFound", err)
	}
}
