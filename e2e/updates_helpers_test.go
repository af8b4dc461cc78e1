package e2e

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// updateKeys makes a publisher key pair (no password prompt: a password file).
func updateKeys(t *testing.T) (secret, public, pwfile string) {
	t.Helper()
	dir := t.TempDir()
	secret, public, pwfile = filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub"), filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte("update-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustNowhere(t, "keygen", "--secret", secret, "--public", public, "--password-file", pwfile)
	return secret, public, pwfile
}

// randomFile writes n pseudo-random bytes (seeded) to p.
func randomFile(t *testing.T, p string, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// updateTrees makes two versions of a small system tree: v2 is v1 with one file changed
// and a few added (an update), so v2's image shares most chunks with v1's.
func updateTrees(t *testing.T) (v1, v2 string) {
	t.Helper()
	dir := t.TempDir()
	v1, v2 = filepath.Join(dir, "v1"), filepath.Join(dir, "v2")
	for i := range 40 {
		randomFile(t, filepath.Join(v1, "usr/lib", "lib"+itoa(i)+".so"), 20000+i*7919, uint64(i+1))
	}
	for i := range 200 {
		randomFile(t, filepath.Join(v1, "etc", "conf"+itoa(i)), 100+i*13, uint64(1000+i))
	}
	mustRun(t, "cp", "-a", v1, v2)
	randomFile(t, filepath.Join(v2, "usr/lib", "lib7.so"), 90000, 777) // changed
	for i := range 5 {
		randomFile(t, filepath.Join(v2, "usr/bin", "new"+itoa(i)), 50000+i*1000, uint64(5000+i))
	}
	return v1, v2
}

func itoa(i int) string { return strconv.Itoa(i) }

// diffJSON is what `nowhere diff --json` prints.
type diffJSON struct {
	SharedChunks int   `json:"shared_chunks"`
	FetchChunks  int   `json:"fetch_chunks"`
	FetchBytes   int64 `json:"fetch_bytes"`
	Cache        *struct {
		HeldChunks  int   `json:"held_chunks"`
		FetchChunks int   `json:"fetch_chunks"`
		FetchBytes  int64 `json:"fetch_bytes"`
	} `json:"cache"`
}

func runDiffJSON(t *testing.T, args ...string) diffJSON {
	t.Helper()
	r := mustNowhere(t, append([]string{"diff", "--json"}, args...)...)
	var d diffJSON
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("diff --json: %v: %s", err, r.stdout)
	}
	return d
}

// chunkFiles counts the chunk files in a store directory.
func chunkFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(filepath.Join(dir, "chunks"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".cacnk") {
			n++
		}
		return nil
	})
	return n
}

func fileEqual(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

// twoVersions writes v1 (3 MiB of random bytes from seed) and v2 (v1 followed by tail)
// into dir, the two versions of an image the S3 tests pack.
func twoVersions(t *testing.T, dir string, seed uint64, tail []byte) (v1, v2 string) {
	t.Helper()
	v1, v2 = filepath.Join(dir, "v1.img"), filepath.Join(dir, "v2.img")
	randomFile(t, v1, 3<<20, seed)
	mustRun(t, "cp", v1, v2)
	f, err := os.OpenFile(v2, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(tail); err != nil {
		t.Fatal(err)
	}
	return v1, v2
}
