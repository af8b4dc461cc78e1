package profile

import (
	"testing"

	"github.com/nowhere-boot/nowhere/internal/index"
)

func entriesOf(tr *Trace) []int {
	var out []int
	for _, it := range tr.Items {
		out = append(out, it.Entry)
	}
	return out
}

func TestMergeOrdersByAverageRank(t *testing.T) {
	p := packImage(t, testImage())
	boot := func(entries ...int) *Trace {
		tr, err := FromEntries(p.ix, entries)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	// Three boots: 1 and 2 always first; 10 early in two boots, late in one; 20 only in
	// the last boot, at its end; 5 and 6 swap places.
	m := Merge(boot(1, 2, 10, 5, 6), boot(1, 2, 6, 10, 5), boot(2, 1, 5, 6, 10, 20))
	got := entriesOf(m)
	want := []int{1, 2, 10, 5, 6, 20} // ranks: 1: 0.33, 2: 0.67, 10: 2.67, 5: 3, 6: 3, 20: 5
	if len(got) != len(want) {
		t.Fatalf("merged %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("merged %v, want %v", got, want)
		}
	}
	if m.Boots != 3 || m.Image != "img" || m.Version != 1 {
		t.Fatalf("merged boots %d image %q version %d", m.Boots, m.Image, m.Version)
	}
	// Merging a merge counts its boots.
	if mm := Merge(m, boot(3)); mm.Boots != 4 || len(mm.Items) != 7 {
		t.Fatalf("merge of a merge: %d boots, %d items", mm.Boots, len(mm.Items))
	}
	other := boot(1)
	other.Version = 2
	if mixed := Merge(m, other); mixed.Version != 0 || mixed.Image != "img" {
		t.Fatalf("versions 1 and 2 merged as version %d", mixed.Version)
	}
}

func TestApplyMapsChunksByID(t *testing.T) {
	img := testImage()
	v1 := packImage(t, img)
	tr, err := FromEntries(v1.ix, []int{60, 0, 33, 5})
	if err != nil {
		t.Fatal(err)
	}
	// Same index: the entries as recorded.
	res := Apply(v1.ix, tr)
	if res.Missing != 0 || len(res.Profile.Entries) != 4 || res.Profile.Entries[0] != 60 || res.Profile.Boots != 1 {
		t.Fatalf("apply to the recorded index: %+v", res)
	}
	c := *v1.ix
	c.Profile = res.Profile
	if _, err := index.Encode(&c); err != nil {
		t.Fatalf("the applied profile does not encode: %v", err)
	}
	// Version 2: 4 KiB inserted at the front (every entry moves by one) and chunk 5's
	// content changed: the profile follows the chunks, and drops the one v2 lacks.
	img2 := append(randBytes(9, 4096), img...)
	copy(img2[4096+5*4096:], randBytes(10, 4096))
	v2 := packImage(t, img2)
	res = Apply(v2.ix, tr)
	if res.Missing != 1 || len(res.Profile.Entries) != 3 {
		t.Fatalf("apply to v2: %+v; want 3 entries, 1 missing", res)
	}
	for k, want := range []int{61, 1, 34} {
		if got := res.Profile.Entries[k]; got != want || v2.ix.Entries[got].ID != tr.Items[k].ID {
			t.Fatalf("v2 item %d: entry %d, want %d holding the same chunk", k, got, want)
		}
	}
}

func TestMeasureCoverage(t *testing.T) {
	p := packImage(t, testImage())
	prof, _ := FromEntries(p.ix, []int{1, 2, 3, 4})
	boot, _ := FromEntries(p.ix, []int{1, 2, 3, 40})
	c := Measure(prof, boot)
	if c.Chunks != 4 || c.Covered != 3 || c.Fraction() != 0.75 || c.Bytes != 4*4096 || c.CovBytes != 3*4096 {
		t.Fatalf("coverage %+v (%.2f), want 3 of 4", c, c.Fraction())
	}
	if (Coverage{}).Fraction() != 1 {
		t.Fatal("an empty boot is not fully covered")
	}
}
