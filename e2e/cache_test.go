package e2e

import (
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDiskCacheKeepsFetchedChunks mounts with --cache DIR, reads files through a loop
// mount, and checks that every chunk the server sent landed in DIR in store layout and
// passes `nowhere cache prune --verify`; then a second mount with the same cache and the
// same server still running reads the same files again without fetching any chunk a
// second time.
//
// Both mounts run with --readahead 0: a chunk read ahead and still in flight when the
// first mount goes away is logged by the server but never reaches the cache, and would be
// fetched again legitimately. Without read-ahead every fetch is a read that completed, and
// a read completes only after its chunks are in the cache.
func TestDiskCacheKeepsFetchedChunks(t *testing.T) {
	f := getFixture(t)
	kernelHas(t, "squashfs")
	files := []string{"big/random-5M", "small/d05/e2/f005.dat", "hard/three"}
	for _, sk := range serverKinds {
		t.Run(sk.name, func(t *testing.T) {
			srv := sk.start(t, f.store)
			cache := filepath.Join(t.TempDir(), "cache")
			readThrough := func() {
				m := mountDaemon(t, srv.url+"/images/squashfs", "squashfs", "--cache", cache, "--readahead", "0")
				root := loopMount(t, m.file, "squashfs")
				for _, p := range files {
					got, err := fileSHA256(filepath.Join(root.dir, p))
					if err != nil {
						t.Fatal(err)
					}
					if want := f.srcNodes[p].SHA256; got != want {
						t.Errorf("%s: sha256 %s, want %s", p, got, want)
					}
				}
				root.unmount(t)
				m.unmount(t)
			}
			readThrough()
			readThrough() // same cache, same server, still up
			srv.Stop(t)

			reqs := srv.Requests(t)
			gets := chunkGets(reqs)
			if len(gets) == 0 {
				t.Fatal("the server sent no chunks at all")
			}
			for p, n := range gets {
				if n != 1 {
					t.Errorf("%s fetched %d times: the second mount did not use the cache", p, n)
				}
			}
			latest := 0
			for _, r := range reqs {
				if r.Path == "/images/squashfs/latest" {
					latest++
				}
			}
			if latest != 2 {
				t.Errorf("the server saw %d requests for the latest pointer, want 2 (one per mount)", latest)
			}

			// The cache is a store: chunks/<4 hex>/<64 hex>.cacnk, exactly the chunks fetched.
			// Beside them it holds only copies of the image's index and latest pointer (to
			// open the image offline) and the clients' rollback memory (trust-state).
			layout := regexp.MustCompile(`^chunks/([0-9a-f]{4})/([0-9a-f]{64})\.cacnk$`)
			metadata := map[string]string{
				"images/squashfs/latest":  filepath.Join(f.store, "images/squashfs/latest"),
				"images/squashfs/1.index": filepath.Join(f.store, "images/squashfs/1.index"),
			}
			cached := make(map[string]bool)
			err := filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(cache, p)
				if orig, ok := metadata[rel]; ok {
					if readFile(p) != readFile(orig) {
						t.Errorf("cache holds %s, which differs from the store's", rel)
					}
					delete(metadata, rel)
					return nil
				}
				if rel == "trust-state" || rel == "trust-state.lock" {
					return nil
				}
				m := layout.FindStringSubmatch(rel)
				if m == nil || !strings.HasPrefix(m[2], m[1]) {
					t.Errorf("cache holds %s, not a chunk in store layout", rel)
				}
				cached["/"+rel] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for p := range gets {
				if !cached[p] {
					t.Errorf("%s was fetched but is not in the cache", p)
				}
			}
			if len(cached) != len(gets) {
				t.Errorf("cache holds %d chunks, %d were fetched", len(cached), len(gets))
			}
			for rel := range metadata {
				t.Errorf("cache lacks its copy of %s", rel)
			}
			if state := readFile(filepath.Join(cache, "trust-state")); !regexp.MustCompile(`(?m)^squashfs@[0-9A-F]+ 1$`).MatchString(state) {
				t.Errorf("the cache's trust state does not remember squashfs version 1: %q", state)
			}
			// Every cached chunk matches its name. (`nowhere verify` would also report the
			// chunks the cached index names that were never read, and so not cached.)
			r := mustNowhere(t, "cache", "prune", cache, "--verify")
			if !strings.Contains(r.stdout, "verified: 0 corrupt chunks dropped") {
				t.Errorf("cache prune --verify %s: %s", cache, r.stdout)
			}
			t.Logf("%d chunks fetched once, all in the cache; %s", len(gets), strings.TrimSpace(r.stdout))
		})
	}
}
