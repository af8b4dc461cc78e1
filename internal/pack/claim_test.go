package pack

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// TestConcurrentPacksClaimDistinctVersions: packs of one name started together all pick
// the same next version; the index file claims it exclusively, so each publishes a version
// of its own (renumbered and re-signed), and every published index verifies as the
// version its file name says, with its own content.
func TestConcurrentPacksClaimDistinctVersions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	d, err := store.CreateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.CreateFile(context.Background(), "images/x/taken", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateFile(context.Background(), "images/x/taken", []byte("b")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("creating an existing file: %v, want fs.ErrExist", err)
	}
	key, _ := trust.GenerateKey()
	spec, _ := chunk.ParseSpec("fixed:64K")
	const n = 4
	var wg sync.WaitGroup
	sizes := make([]int64, n)
	versions := make([]uint64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img := make([]byte, (256+64*i)<<10) // each pack's image has its own size
			rand.New(rand.NewSource(int64(i))).Read(img)
			sizes[i] = int64(len(img))
			// Every pack picks version 1, as packs started at the same moment do.
			res, err := Run(context.Background(), bytes.NewReader(img), d, Options{Name: "os", Spec: spec, Signer: key, Version: 1})
			errs[i] = err
			if err == nil {
				versions[i] = res.Index.Version
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pack %d: %v", i, err)
		}
	}
	if got := slices.Sorted(slices.Values(versions)); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("versions published: %v, want 1 to 4, one each", versions)
	}
	v, _ := trust.NewVerifier(trust.Policy{Keys: []trust.PublicKey{key.Public()}})
	for i, ver := range versions {
		file, err := d.File(context.Background(), store.IndexPath("os", ver), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		ix, err := v.Index("os", ver, file)
		if err != nil {
			t.Fatalf("version %d: %v", ver, err)
		}
		if ix.Version != ver || ix.Size != sizes[i] {
			t.Errorf("%s holds version %d of %d bytes, want version %d of %d (pack %d's)", store.IndexPath("os", ver), ix.Version, ix.Size, ver, sizes[i], i)
		}
	}
}
