package store_test

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

func randBytes(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// testChunk is a chunk as a store holds it.
type testChunk struct {
	plain, raw []byte
	ref        chunk.Ref
}

func newChunk(seed uint64, n int) testChunk {
	plain := randBytes(seed, n)
	copy(plain, "compressible prefix compressible prefix compressible prefix")
	raw := chunk.Encode(nil, plain)
	return testChunk{plain, raw, chunk.Ref{ID: chunk.Sum(plain), Len: uint32(n), Stored: uint32(len(raw))}}
}

func newDir(t *testing.T) *store.Dir {
	t.Helper()
	d, err := store.CreateDir(t.TempDir() + "/store")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func put(t *testing.T, d *store.Dir, c testChunk) {
	t.Helper()
	if _, err := d.PutChunk(context.Background(), c.ref.ID, c.raw); err != nil {
		t.Fatal(err)
	}
}

// serve starts nowhere's own HTTP server for the directory on 127.0.0.1.
func serve(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.Handler(root))
	t.Cleanup(func() { srv.Close(); root.Close() })
	return srv
}

func newHTTP(t *testing.T, url string) *store.HTTP {
	t.Helper()
	h, err := store.NewHTTP(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
