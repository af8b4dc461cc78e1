package store_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// conformance is what every Store backend must do. open returns a reader for the store
// that the Dir w writes.
func conformance(t *testing.T, open func(t *testing.T, w *store.Dir) store.Store) {
	ctx := context.Background()
	t.Run("chunk", func(t *testing.T) {
		w := newDir(t)
		s := open(t, w)
		c := newChunk(1, 100<<10)
		put(t, w, c)
		for _, ref := range []chunk.Ref{c.ref, {ID: c.ref.ID, Len: c.ref.Len}} {
			raw, err := s.Chunk(ctx, ref)
			if err != nil || !bytes.Equal(raw, c.raw) {
				t.Fatalf("Chunk(Stored=%d): %d bytes, %v", ref.Stored, len(raw), err)
			}
		}
		got, err := store.Verify(s).Fetch(ctx, c.ref)
		if err != nil || !bytes.Equal(got.Plain, c.plain) || !bytes.Equal(got.Raw, c.raw) {
			t.Fatalf("Verify: %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		w := newDir(t)
		s := open(t, w)
		c := newChunk(2, 1000)
		_, err := s.Chunk(ctx, c.ref)
		if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), store.ChunkPath(c.ref.ID)) {
			t.Fatalf("missing chunk: %v; want ErrNotFound naming %s", err, store.ChunkPath(c.ref.ID))
		}
		if _, err := store.Verify(s).Fetch(ctx, c.ref); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Verify of a missing chunk: %v", err)
		}
		_, err = s.File(ctx, "images/nope/latest", 4096)
		if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "images/nope/latest") {
			t.Fatalf("missing file: %v", err)
		}
	})
	t.Run("file", func(t *testing.T) {
		w := newDir(t)
		s := open(t, w)
		data := []byte("nowhere-latest 1\nname a\n")
		if err := w.PutFile(ctx, "images/a/latest", data); err != nil {
			t.Fatal(err)
		}
		got, err := s.File(ctx, "images/a/latest", int64(len(data)))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("File: %q, %v", got, err)
		}
		if _, err := s.File(ctx, "images/a", 1<<20); err == nil {
			t.Fatal("a directory read as a file")
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		w := newDir(t)
		s := open(t, w)
		c := newChunk(3, 50<<10)
		other := newChunk(4, 50<<10)
		p := filepath.Join(w.Path(), store.ChunkPath(c.ref.ID))
		for name, bad := range map[string][]byte{
			"other chunk": other.raw,
			"garbage":     randBytes(5, len(c.raw)),
			"truncated":   c.raw[:len(c.raw)-5],
			"flipped":     append(append([]byte(nil), c.raw[:100]...), append([]byte{c.raw[100] ^ 1}, c.raw[101:]...)...),
		} {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := store.Verify(s).Fetch(ctx, chunk.Ref{ID: c.ref.ID, Len: c.ref.Len})
			if !errors.Is(err, chunk.ErrCorrupt) || got.Plain != nil {
				t.Fatalf("%s: Verify returned %d bytes, %v; want ErrCorrupt", name, len(got.Plain), err)
			}
		}
	})
	t.Run("too large", func(t *testing.T) {
		w := newDir(t)
		s := open(t, w)
		c := newChunk(6, 200<<10)
		put(t, w, c)
		ref := c.ref
		ref.Stored--
		var tl *store.TooLargeError
		if _, err := s.Chunk(ctx, ref); !errors.As(err, &tl) || tl.Limit != int64(ref.Stored) {
			t.Fatalf("chunk larger than its Stored size: %v; want *TooLargeError with limit %d", err, ref.Stored)
		}
		if err := w.PutFile(ctx, "images/x/1.index", make([]byte, 5000)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.File(ctx, "images/x/1.index", 4999); !errors.As(err, &tl) {
			t.Fatalf("file above max: %v; want *TooLargeError", err)
		}
		if b, err := s.File(ctx, "images/x/1.index", 5000); err != nil || len(b) != 5000 {
			t.Fatalf("file of exactly max: %d bytes, %v", len(b), err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		w := newDir(t)
		s := open(t, w)
		f := store.Verify(s)
		cs := make([]testChunk, 32)
		for i := range cs {
			cs[i] = newChunk(uint64(100+i), 20<<10+i*1000)
			put(t, w, cs[i])
		}
		var wg sync.WaitGroup
		errs := make(chan error, 32*4)
		for round := 0; round < 4; round++ {
			for i := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := f.Fetch(ctx, cs[i].ref)
					if err == nil && !bytes.Equal(got.Plain, cs[i].plain) {
						err = errors.New("wrong bytes for chunk " + cs[i].ref.ID.String())
					}
					if err != nil {
						errs <- err
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		w := newDir(t)
		s := open(t, w)
		c := newChunk(7, 10<<10)
		put(t, w, c)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			// A cancelled request either fails with the context's error or (for a local
			// read that cannot block) still returns the right bytes; never anything else.
			raw, err := s.Chunk(cctx, c.ref)
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled Chunk: %v; want context.Canceled", err)
			}
			if err == nil && !bytes.Equal(raw, c.raw) {
				t.Error("cancelled Chunk returned wrong bytes")
			}
			_, err = s.File(cctx, "images/none/latest", 100)
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("cancelled File: %v", err)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("cancelled request did not return")
		}
	})
}

func TestDirConformance(t *testing.T) {
	conformance(t, func(t *testing.T, w *store.Dir) store.Store {
		d, err := store.OpenDir(w.Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}

func TestHTTPConformance(t *testing.T) {
	conformance(t, func(t *testing.T, w *store.Dir) store.Store {
		return newHTTP(t, serve(t, w.Path()).URL)
	})
}

// A store published under a path prefix (a mirror sharing a web server) works the same.
func TestHTTPConformanceUnderPrefix(t *testing.T) {
	conformance(t, func(t *testing.T, w *store.Dir) store.Store {
		root, err := os.OpenRoot(w.Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { root.Close() })
		mux := http.NewServeMux()
		mux.Handle("/mirrors/nowhere/", http.StripPrefix("/mirrors/nowhere", server.Handler(root)))
		front := httptest.NewServer(mux)
		t.Cleanup(front.Close)
		return newHTTP(t, front.URL+"/mirrors/nowhere")
	})
}
