package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestMountedImagesMatchTheSourceTree packs an ext4, a squashfs and an erofs image of the
// same tree, serves the store with nowhere serve and with nginx, mounts each image through
// FUSE, loop-mounts the mounted file and compares the tree read back with the source.
// It also checks that reading one small file moves only a fraction of the image.
func TestMountedImagesMatchTheSourceTree(t *testing.T) {
	f := getFixture(t)
	for _, format := range formats {
		for _, sk := range serverKinds {
			t.Run(format+"/"+sk.name, func(t *testing.T) {
				kernelHas(t, format)
				ix := loadIndex(t, f.store, format, 1)
				url := func(s *httpServer) string { return s.url + "/images/" + format }

				// Partial read: one small file. The server is stopped before its log is
				// read, so the log is complete.
				srv := sk.start(t, f.store)
				m := mountDaemon(t, url(srv), format)
				root := loopMount(t, m.file, format)
				const small = "deep/a/b/c/d/e/f/g/h/i/j/leaf.txt"
				got, err := os.ReadFile(filepath.Join(root.dir, small))
				if err != nil {
					t.Fatal(err)
				}
				want, _ := os.ReadFile(filepath.Join(f.tree, small))
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: read %q, want %q", small, got, want)
				}
				root.unmount(t)
				m.unmount(t)
				srv.Stop(t)
				served := bodyBytes(srv.Requests(t))
				st := ix.Stats()
				t.Logf("reading one small file: %s served %d bytes of a %d-byte image (%d bytes stored, %d chunks)",
					sk.name, served, ix.Size, st.StoredBytes, st.Unique)
				if served >= ix.Size || served >= st.StoredBytes/2 {
					t.Errorf("reading one small file moved %d bytes: not less than the image (%d bytes) and half its chunks (%d bytes)",
						served, ix.Size, st.StoredBytes/2)
				}

				// The whole tree.
				srv = sk.start(t, f.store)
				m = mountDaemon(t, url(srv), format)
				root = loopMount(t, m.file, format)
				var skip func(string) bool
				if format == "ext4" {
					skip = skipLostFound
				}
				back, err := scanTree(root.dir, skip)
				if err != nil {
					t.Fatal(err)
				}
				compareTrees(t, f.srcNodes, back)
				if len(back) < 300 {
					t.Errorf("only %d paths read back", len(back))
				}
			})
		}
	}
}
