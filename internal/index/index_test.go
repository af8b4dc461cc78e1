package index

import (
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

func TestFind(t *testing.T) {
	ix := sampleIndex(50)
	for i, e := range ix.Entries {
		for _, off := range []int64{e.Off, e.Off + int64(e.Len)/2, e.End() - 1} {
			if got := ix.Find(off); got != i {
				t.Fatalf("Find(%d) = %d, want %d (entry [%d,%d))", off, got, i, e.Off, e.End())
			}
		}
	}
	if got := ix.Find(ix.Size); got != len(ix.Entries) {
		t.Fatalf("Find(Size) = %d, want len(Entries)", got)
	}
}

func TestStats(t *testing.T) {
	a, b := chunk.Sum([]byte("a")), chunk.Sum([]byte("b"))
	ix := &Index{Name: "s", Size: 100 + 200 + 1000 + 100 + 50, Entries: []Entry{
		{Off: 0, Len: 100, Stored: 10, ID: a},
		{Off: 100, Len: 200, Stored: 20, ID: b},
		{Off: 300, Len: 1000, Zero: true},
		{Off: 1300, Len: 100, Stored: 10, ID: a},
		{Off: 1400, Len: 50, Zero: true},
	}}
	want := Stats{Chunks: 3, Zero: 2, Unique: 2, DataBytes: 400, ZeroBytes: 1050, StoredBytes: 30}
	if got := ix.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
	if (Entry{Off: 5, Len: 10}).End() != 15 {
		t.Fatal("End")
	}
}

func TestValidName(t *testing.T) {
	for _, good := range []string{"a", "A", "0", "debian-12.img", "x_y", "v1.2.3", "_", strings.Repeat("z", 128)} {
		if err := ValidName(good); err != nil {
			t.Errorf("ValidName(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", ".", "..", ".hidden", "-flag", "a/b", "a\\b", "a b", "a\x00", "ä", "a:b",
		"a%2fb", strings.Repeat("z", 129), "latest\n"} {
		if err := ValidName(bad); err == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		} else if !strings.Contains(err.Error(), "image name") {
			t.Errorf("ValidName(%q): %q does not say what is wrong", bad, err)
		}
	}
}

// TestStatsCountsFirstOccurrences: Stats counts each chunk ID once, with the stored size
// of its first entry, as a set of IDs would.
func TestStatsCountsFirstOccurrences(t *testing.T) {
	ix := sampleIndex(500)
	// Give a repeated chunk a different stored size in a later entry: only the first counts.
	var first = -1
	for i, e := range ix.Entries {
		if !e.Zero && e.ID == chunk.Sum([]byte("repeated")) {
			if first < 0 {
				first = i
			} else {
				ix.Entries[i].Stored = e.Stored + 1000
			}
		}
	}
	var want Stats
	seen := map[chunk.ID]bool{}
	for _, e := range ix.Entries {
		if e.Zero {
			want.Zero++
			want.ZeroBytes += int64(e.Len)
			continue
		}
		want.Chunks++
		want.DataBytes += int64(e.Len)
		if !seen[e.ID] {
			seen[e.ID] = true
			want.Unique++
			want.StoredBytes += int64(e.Stored)
		}
	}
	if got := ix.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}
