package rootd

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// TestOfflineBootUsesTheLastAcceptedIndex is the daemon's index step, run as each boot
// runs it, with one cache disk (a directory) across boots:
//  1. online, version 1 signed by the trusted key: accepted, and kept on the cache;
//  2. online, version 2 signed by another key: refused, and not kept;
//  3. offline (the server stopped): version 1 from the cache, the copy of step 1, not
//     step 2's refused pointer;
//  4. offline with the cached index altered: refused (the pointer pins its hash);
//  5. offline after a later version was accepted elsewhere: refused as a rollback.
func TestOfflineBootUsesTheLastAcceptedIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildNowhere(t, dir)
	secret, public := keygen(t, bin, dir, "publisher")
	other, _ := keygen(t, bin, dir, "attacker")
	img := filepath.Join(dir, "disk.img")
	b := make([]byte, 1<<20)
	rand.Read(b)
	os.WriteFile(img, b, 0o644)
	storeDir := filepath.Join(dir, "store")
	packImage(t, bin, img, storeDir, "--key", secret) // version 1
	srv, err := vm.Serve(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := "http://" + srv.Addr
	loc := image.Location{Store: url, Name: "disk"}
	cacheDir, stateFile := filepath.Join(dir, "cache"), filepath.Join(dir, "trust-state")
	spec := Spec{Image: url + "/images/disk", Keys: []string{public}, StateFile: stateFile, CacheDir: cacheDir}
	var out lockedBuffer
	log := bootlog.New(&out, "nowhere-root")

	boot := func() (*index.Index, error) {
		t.Helper()
		v, err := newVerifier(spec, log)
		if err != nil {
			t.Fatal(err)
		}
		src, err := openSources(url, spec, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		if src.cache == nil {
			t.Fatalf("no cache:\n%s", out.String())
		}
		defer src.cache.Close()
		defer src.set.Close()
		ix, files, err := loadIndexOnce(src.store, loc, v)
		if err == nil {
			src.keep(files, log)
		}
		return ix, err
	}
	latest := filepath.Join(cacheDir, store.LatestPath("disk"))

	ix, err := boot()
	if err != nil || ix.Version != 1 {
		t.Fatalf("online boot of version 1: %v", err)
	}
	kept, err := os.ReadFile(latest)
	if want, _ := os.ReadFile(filepath.Join(storeDir, store.LatestPath("disk"))); err != nil || !bytes.Equal(kept, want) {
		t.Fatalf("the cache did not keep the accepted pointer: %v", err)
	}

	packImage(t, bin, img, storeDir, "--key", other) // version 2, another key
	if _, err := boot(); err == nil || !refused(err) {
		t.Fatalf("online boot of version 2 signed by another key: %v, want a refusal", err)
	}
	if again, _ := os.ReadFile(latest); !bytes.Equal(again, kept) {
		t.Fatal("the refused pointer of version 2 replaced the kept one on the cache")
	}

	srv.Close()
	out.Reset()
	ix, err = boot()
	if err != nil || ix.Version != 1 {
		t.Fatalf("offline boot: %v, want version 1 from the cache:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "images/disk/latest: using the cached copy") {
		t.Errorf("the offline boot did not say it used the cached pointer:\n%s", out.String())
	}

	indexFile := filepath.Join(cacheDir, store.IndexPath("disk", 1))
	good, err := os.ReadFile(indexFile)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 1
	os.WriteFile(indexFile, bad, 0o644)
	if _, err := boot(); err == nil || !refused(err) {
		t.Errorf("offline boot with an altered cached index: %v, want a refusal", err)
	}
	os.WriteFile(indexFile, good, 0o644)

	if err := trust.OpenState(stateFile).Accept("disk", "", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := boot(); !errors.Is(err, trust.ErrRollback) {
		t.Errorf("offline boot of the cached version 1 after version 3 was accepted: %v, want a rollback refusal", err)
	}
}

// lockedBuffer is a log destination the mirror set's goroutines may write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}
