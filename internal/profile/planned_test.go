package profile

import (
	"testing"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Planned tells read-ahead which chunks the queue will bring: the profile's, until a read
// has had them or the queue is over; never a chunk outside the profile.
func TestPlannedIsWhatTheQueueWillBring(t *testing.T) {
	p := profiled(t, 5, 6, 7)
	g := newGate(store.Verify(p.dir))
	pf := NewPrefetcher(g, Queue(p.ix), Options{Parallel: 1})
	defer pf.Close()
	id := func(i int) string { return p.ix.Entries[i].ID.String() }
	for _, i := range []int{5, 6, 7} {
		if !pf.Planned(p.ix.Entries[i].ID) {
			t.Errorf("profile entry %d (%s) not planned before the queue started", i, id(i))
		}
	}
	if pf.Planned(p.ix.Entries[20].ID) {
		t.Error("a chunk outside the profile is planned")
	}
	// A read has entry 6 before the queue gets to it: the queue skips it, so it is no
	// longer planned.
	r := image.NewReader(p.ix, pf, image.Options{ReadAhead: -1})
	readEntry(t, r, p, 6)
	if pf.Planned(p.ix.Entries[6].ID) {
		t.Error("entry 6 is still planned after a read had it")
	}
	pf.Start()
	<-pf.Done()
	// Entries 5 and 7 are prefetched and held for their reads: still planned.
	if !pf.Planned(p.ix.Entries[5].ID) || !pf.Planned(p.ix.Entries[7].ID) {
		t.Error("prefetched chunks held for their reads are not planned")
	}
}
