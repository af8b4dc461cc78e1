package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

// TestUnservableReadsFailWithEIO serves a store where one chunk is missing and another
// holds valid zstd of the wrong content (it decompresses fine; only its hash gives it
// away), mounts with --timeout 2s and reads across each with dd: dd gets every byte
// before the bad chunk right, then EIO, and never a byte of the bad chunk; reading it
// again fails again; the rest of the image still reads correctly.
func TestUnservableReadsFailWithEIO(t *testing.T) {
	f := getFixture(t)
	store := copyStore(t, f.store)
	ix := loadIndex(t, store, "ext4", 1)
	uses := make(map[chunk.ID]int)
	for _, e := range ix.Entries {
		uses[e.ID]++
	}
	// Victims: chunks of incompressible data, used once in the image, each following
	// another stored chunk (so the bytes before it are real data to check).
	var victims []index.Entry
	for i := 1; i < len(ix.Entries) && len(victims) < 2; i++ {
		e, prev := ix.Entries[i], ix.Entries[i-1]
		if e.Zero || prev.Zero || uses[e.ID] != 1 || e.Stored < e.Len || prev.Len < 8192 {
			continue
		}
		if len(victims) == 1 && e.Off < victims[0].Off+8<<20 {
			continue // far apart, so reads around one never touch the other
		}
		victims = append(victims, e)
	}
	if len(victims) < 2 {
		t.Fatalf("no two suitable chunks in the ext4 image")
	}
	missing, wrong := victims[0], victims[1]
	if err := os.Remove(filepath.Join(store, chunkURLPath(missing))); err != nil {
		t.Fatal(err)
	}
	replaceWithWrongContent(t, filepath.Join(store, chunkURLPath(wrong)), wrong)

	srv := startNowhereServe(t, store)
	m := mountDaemon(t, srv.url+"/images/ext4", "ext4", "--timeout", "2s")
	image := f.images["ext4"]
	for _, c := range []struct {
		name string
		e    index.Entry
	}{{"missing chunk", missing}, {"chunk with the wrong content", wrong}} {
		prev := ix.Entries[ix.Find(c.e.Off-1)]
		from := max(prev.Off, c.e.Off-64<<10) &^ 4095
		for attempt := 1; attempt <= 2; attempt++ {
			out := filepath.Join(t.TempDir(), "out")
			r := runCmdStdin(t, nil, "dd", "if="+m.file, "of="+out, "bs=4096", "iflag=direct",
				"skip="+strconv.FormatInt(from/4096, 10), "count="+strconv.FormatInt((c.e.End()-from+4095)/4096, 10))
			if r.code == 0 {
				t.Errorf("%s (attempt %d): dd across it succeeded", c.name, attempt)
			}
			if !strings.Contains(r.stderr, "Input/output error") {
				t.Errorf("%s (attempt %d): dd did not fail with EIO: %s", c.name, attempt, r.stderr)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != c.e.Off-from {
				t.Errorf("%s (attempt %d): dd copied %d bytes, want exactly the %d before the bad chunk",
					c.name, attempt, len(got), c.e.Off-from)
			}
			if want := readImageRange(t, image, from, int64(len(got))); !bytes.Equal(got, want) {
				t.Errorf("%s (attempt %d): the bytes before the bad chunk are wrong", c.name, attempt)
			}
		}
	}
	if log := readFile(m.log); !strings.Contains(log, missing.ID.String()[:16]) || !strings.Contains(log, wrong.ID.String()[:16]) {
		t.Errorf("the mount log does not name both bad chunks:\n%s", log)
	}

	// Everything else still reads: the whole image but the two bad chunks, in 1 MiB steps.
	bad := func(off, n int64) bool {
		for _, e := range victims {
			if off < e.End() && e.Off < off+n {
				return true
			}
		}
		return false
	}
	fd, err := os.Open(m.file)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	checked := 0
	for off := int64(0); off < ix.Size; off += 1 << 20 {
		n := min(1<<20, ix.Size-off)
		if bad(off, n) {
			continue
		}
		got := make([]byte, n)
		if _, err := fd.ReadAt(got, off); err != nil {
			t.Fatalf("reading at %d, away from the bad chunks: %v", off, err)
		}
		if !bytes.Equal(got, readImageRange(t, image, off, n)) {
			t.Fatalf("wrong bytes at %d, away from the bad chunks", off)
		}
		checked++
	}
	t.Logf("bad chunks at %d and %d; %d MiB elsewhere read correctly; mount log:\n%s", missing.Off, wrong.Off, checked, readFile(m.log))
}

// replaceWithWrongContent rewrites a chunk file as a valid zstd frame of the same size
// whose content differs from the chunk's by one byte.
func replaceWithWrongContent(t *testing.T, path string, e index.Entry) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := chunk.DecodeUnknown(e.ID, raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(plain) / 2; i < len(plain); i++ {
		plain[i] ^= 0x01
		if forged := chunk.Encode(nil, plain); len(forged) == len(raw) {
			if err := os.WriteFile(path, forged, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		plain[i] ^= 0x01
	}
	t.Fatalf("cannot forge a same-size chunk for %s", path)
}
