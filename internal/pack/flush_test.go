package pack

import (
	"bytes"
	"context"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// syncCountingDir is a real directory store that counts its flushes.
type syncCountingDir struct {
	*store.Dir
	syncs atomic.Int32
}

func (d *syncCountingDir) Sync() error {
	d.syncs.Add(1)
	return d.Dir.Sync()
}

// A pack that writes more than flushEvery flushes in the background while it runs, and
// still flushes once more before publishing.
func TestPackFlushesWhileWriting(t *testing.T) {
	dir, err := store.CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	w := &syncCountingDir{Dir: dir}
	img := make([]byte, 3*flushEvery) // incompressible: ~3 flushEvery of chunk files
	rand.New(rand.NewSource(5)).Read(img)
	spec, err := chunk.ParseSpec(chunk.DefaultSpec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), bytes.NewReader(img), w, Options{Name: "flush", Spec: spec, Created: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored < 2*flushEvery {
		t.Fatalf("stored %d bytes, want more than %d", res.Stored, 2*flushEvery)
	}
	if n := w.syncs.Load(); n < 2 {
		t.Fatalf("%d flushes for %d bytes written: want background flushes and the final one", n, res.Stored)
	}
}
