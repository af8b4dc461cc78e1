package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	if !strings.Contains(r.stdout, ": 2 problems\n") {
		t.Errorf("the summary does not count 2 problems:\n%s", r.stdout)
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
