package bootprofile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

type zeros int64

func (z zeros) ReadAtContext(_ context.Context, p []byte, off int64) (int, error) {
	clear(p)
	return len(p), nil
}
func (z zeros) Size() int64 { return int64(z) }

// Reads become the index's entries in the order of their first read: each chunk once,
// zero runs left out, reads after Stop ignored.
func TestTraceFollowsFirstReads(t *testing.T) {
	const K = 4096
	ix := &index.Index{Name: "img", Version: 3, Size: 8 * K}
	for i := 0; i < 8; i++ {
		e := index.Entry{Off: int64(i * K), Len: K, ID: chunk.Sum([]byte{byte(i)})}
		if i == 6 {
			e.Zero, e.ID = true, chunk.ID{}
		}
		ix.Entries = append(ix.Entries, e)
	}
	r := Record(zeros(ix.Size))
	ctx := context.Background()
	buf := make([]byte, 2*K)
	r.ReadAtContext(ctx, buf, 5*K)      // 5, 6 (zero)
	r.ReadAtContext(ctx, buf[:10], 1*K) // 1
	r.ReadAtContext(ctx, buf, 5*K+100)  // 5, 6 again: nothing new
	r.ReadAtContext(ctx, buf[:1], 7*K)  // 7
	r.Stop()
	r.ReadAtContext(ctx, buf, 2*K) // after Stop: not noted
	tr := r.Trace(ix)
	var got []int
	for _, it := range tr.Items {
		got = append(got, it.Entry)
	}
	if len(got) != 3 || got[0] != 5 || got[1] != 1 || got[2] != 7 {
		t.Fatalf("trace entries %v, want [5 1 7]", got)
	}
	if tr.Image != "img" || tr.Version != 3 || tr.Boots != 1 {
		t.Fatalf("trace of %s %d, %d boots", tr.Image, tr.Version, tr.Boots)
	}
	if r.Bytes() != 2*K+10+2*K+1 {
		t.Fatalf("Bytes %d", r.Bytes())
	}
}

func TestCheckRoot(t *testing.T) {
	root := t.TempDir()
	var u *Unavailable
	if err := checkRoot(root, DefaultUntil); !errors.As(err, &u) || !strings.Contains(err.Error(), "no systemd") {
		t.Fatalf("empty root: %v", err)
	}
	// Debian 12's layout: lib -> usr/lib, resolved inside the root.
	must(t, os.MkdirAll(filepath.Join(root, "usr/lib/systemd/system"), 0o755))
	must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
	must(t, os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd"), []byte("\x7fELF"), 0o755))
	if err := checkRoot(root, DefaultUntil); !errors.As(err, &u) || !strings.Contains(err.Error(), "no unit multi-user.target") {
		t.Fatalf("no unit: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(root, "usr/lib/systemd/system/multi-user.target"), []byte("[Unit]\n"), 0o644))
	if err := checkRoot(root, DefaultUntil); err != nil {
		t.Fatal(err)
	}
	// An absolute symlink points into the host, not the image: it must not count.
	other := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(other, "usr/lib/systemd"), 0o755))
	must(t, os.Symlink("/usr/lib/systemd/systemd", filepath.Join(other, "usr/lib/systemd/systemd")))
	if err := checkRoot(other, DefaultUntil); !errors.As(err, &u) {
		t.Fatalf("absolute symlink out of the root accepted: %v", err)
	}
}

func TestBootRefusals(t *testing.T) {
	var u *Unavailable
	_, err := Boot(context.Background(), zeros(1<<20), Options{Nspawn: "no-such-systemd-nspawn"})
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "systemd-container") {
		t.Fatalf("without systemd-nspawn: %v", err)
	}
	for _, unit := range []string{"multi-user", "a/b.target", "x y.service"} {
		if _, err := Boot(context.Background(), zeros(1<<20), Options{Until: unit}); err == nil || !strings.Contains(err.Error(), "systemd unit name") {
			t.Errorf("unit %q: %v", unit, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
