package gc_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/gc"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// TestRemovesStaleTempFiles: temporary files an interrupted writer left in a directory
// store (a chunk's in its fan-out directory, a metadata file's under images/) are counted
// by a dry run and removed by gc once older than the grace period; a young one stays, as
// a young unreferenced chunk does.
func TestRemovesStaleTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	plain := []byte("a chunk that no index references yet")
	id := chunk.Sum(plain)
	raw := chunk.Encode(nil, plain)
	if _, err := d.PutChunk(ctx, id, raw); err != nil {
		t.Fatal(err)
	}
	fan := filepath.Dir(filepath.Join(dir, store.ChunkPath(id)))
	old := time.Now().Add(-2 * time.Hour)
	write := func(p string, mod time.Time) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("half a chunk"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
		return p
	}
	staleChunk := write(filepath.Join(fan, ".tmp-"+id.String()+".cacnk-0123456789ab"), old)
	staleMeta := write(filepath.Join(dir, "images", "os", ".tmp-latest-0123456789ab"), old)
	young := write(filepath.Join(fan, ".tmp-"+id.String()+".cacnk-ba9876543210"), time.Now())

	res, err := gc.Run(ctx, d, gc.Options{Keep: 1, Grace: time.Hour, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Temps != 2 || res.TempBytes != 2*int64(len("half a chunk")) || res.YoungTemps != 1 {
		t.Errorf("dry run: %d stale temporary files (%d bytes), %d young; want 2 (%d bytes), 1",
			res.Temps, res.TempBytes, res.YoungTemps, 2*len("half a chunk"))
	}
	for _, p := range []string{staleChunk, staleMeta, young} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the dry run removed %s", p)
		}
	}

	res, err = gc.Run(ctx, d, gc.Options{Keep: 1, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Temps != 2 || res.YoungTemps != 1 || res.Young != 1 || res.Removed != 0 {
		t.Errorf("gc: %+v; want 2 temporary files removed, 1 young kept, the young chunk kept", res)
	}
	for _, p := range []string{staleChunk, staleMeta} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("gc left %s (stat: %v)", p, err)
		}
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("gc removed the young temporary file %s: %v", young, err)
	}
	if _, ok, err := d.HasChunk(ctx, id); !ok || err != nil {
		t.Errorf("gc removed the young chunk: %v", err)
	}
}
