package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVerifyReportsDamagedStores runs `nowhere verify` on the clean shared store (exit 0)
// and on a copy with one chunk corrupted by a flipped byte and another deleted: each
// problem is one line naming the chunk file, and the exit status is 1.
func TestVerifyReportsDamagedStores(t *testing.T) {
	f := getFixture(t)
	r := mustNowhere(t, "verify", f.store)
	if !strings.Contains(r.stdout, "3 indexes: 0 problems") {
		t.Errorf("verify of the clean store: %q, want 3 indexes and 0 problems", r.stdout)
	}

	store := copyStore(t, f.store)
	stored := entriesOverlapping(loadIndex(t, store, "erofs", 1), 0, 1<<62)
	flipped, deleted := chunkURLPath(stored[len(stored)/3]), chunkURLPath(stored[2*len(stored)/3])
	if flipped == deleted {
		t.Fatal("picked the same chunk twice")
	}
	path := filepath.Join(store, flipped)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(store, deleted)); err != nil {
		t.Fatal(err)
	}

	r = runNowhere(t, "verify", store)
	if r.code != 1 {
		t.Errorf("verify of a damaged store: exit %d, want 1", r.code)
	}
	assertOneLineError(t, "verify of a damaged store", r, "problems")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !strings.HasPrefix(l, "verified ") {
			lines = append(lines, l)
		}
	}
	t.Logf("verify reported:\n%s", strings.Join(lines, "\n"))
	for _, want := range []string{flipped, deleted} {
		named := false
		for _, l := range lines {
			named = named || strings.Contains(l, strings.TrimPrefix(want, "/"))
		}
		if !named {
			t.Errorf("no line names %s", want)
		}
	}
	for _, l := range lines {
		if !strings.Contains(l, strings.TrimPrefix(flipped, "/")) && !strings.Contains(l, strings.TrimPrefix(deleted, "/")) {
			t.Errorf("a problem line names neither damaged chunk: %s", l)
		}
	}
	if !strings.Contains(r.stdout, ": 3 problems\n") { // the corrupt chunk twice (its file, its reference), the missing one
		t.Errorf("the summary does not count 3 problems:\n%s", r.stdout)
	}

	// One problem is counted in the singular, in the summary and in the error.
	one := copyStore(t, f.store)
	if err := os.Remove(filepath.Join(one, deleted)); err != nil {
		t.Fatal(err)
	}
	r = runNowhere(t, "verify", one)
	assertOneLineError(t, "verify with one problem", r, ": 1 problem found")
	if !strings.Contains(r.stdout, "3 indexes: 1 problem\n") {
		t.Errorf("verify with one problem: the summary is not in the singular:\n%s", r.stdout)
	}
}

// TestTempFilesOfAnInterruptedPack: the temporary files a killed pack leaves (a chunk's
// in its fan-out directory, a pointer's under images/) make `nowhere verify` warn, with
// exit 0; `nowhere gc --dry-run` counts those older than --grace, and gc removes them,
// keeping a young one (a writer may still run) and every chunk the images need.
func TestTempFilesOfAnInterruptedPack(t *testing.T) {
	f := getFixture(t)
	store := copyStore(t, f.store)
	e := entriesOverlapping(loadIndex(t, store, "erofs", 1), 0, 1<<62)[0]
	fan := filepath.Dir(filepath.Join(store, chunkURLPath(e)))
	old := time.Now().Add(-3 * time.Hour)
	leave := func(p string, mod time.Time) string {
		t.Helper()
		if err := os.WriteFile(p, []byte("the first half of a chunk"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
		return p
	}
	staleChunk := leave(filepath.Join(fan, ".tmp-"+e.ID.String()+".cacnk-0123456789ab"), old)
	stalePointer := leave(filepath.Join(store, "images", "erofs", ".tmp-latest-0123456789ab"), old)
	young := leave(filepath.Join(fan, ".tmp-"+e.ID.String()+".cacnk-ba9876543210"), time.Now())
	rel := func(p string) string { r, _ := filepath.Rel(store, p); return r }

	r := mustNowhere(t, "verify", store)
	for _, p := range []string{staleChunk, stalePointer, young} {
		if !strings.Contains(r.stdout, "warning: temporary file "+rel(p)) {
			t.Errorf("verify does not warn about %s:\n%s", rel(p), r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "3 indexes: 0 problems, 3 warnings\n") {
		t.Errorf("verify's summary does not count 0 problems and 3 warnings:\n%s", r.stdout)
	}

	dry := mustNowhere(t, "gc", store, "--keep", "1", "--keep-within", "0", "--dry-run").stdout
	if !strings.Contains(dry, "temporary files of interrupted writers: would remove 2 (50 B); 1 kept for the grace period") {
		t.Errorf("gc --dry-run does not count the 2 stale temporary files:\n%s", dry)
	}
	for _, p := range []string{staleChunk, stalePointer, young} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("gc --dry-run removed %s", rel(p))
		}
	}

	out := mustNowhere(t, "gc", store, "--keep", "1", "--keep-within", "0").stdout
	if !strings.Contains(out, "temporary files of interrupted writers: removed 2 (50 B)") {
		t.Errorf("gc does not report removing the 2 stale temporary files:\n%s", out)
	}
	for _, p := range []string{staleChunk, stalePointer} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("gc left %s (%v)", rel(p), err)
		}
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("gc removed the young %s: %v", rel(young), err)
	}
	r = mustNowhere(t, "verify", store)
	if !strings.Contains(r.stdout, "3 indexes: 0 problems, 1 warning\n") {
		t.Errorf("verify after gc:\n%s", r.stdout)
	}
}
