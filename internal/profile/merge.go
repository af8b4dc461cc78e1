package profile

import (
	"slices"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

// Merge combines recorded boots into one trace: every chunk any of them read, ordered by
// its average position in the boots that read it (a chunk every boot reads early stays
// early; one only some boots read lands where those boots read it), ties broken by first
// appearance. Boots add up.
func Merge(traces ...*Trace) *Trace {
	type acc struct {
		item  Item
		sum   float64
		n     int
		first int // order of first appearance across the traces
	}
	byID := map[chunk.ID]*acc{}
	var order []*acc
	out := &Trace{}
	for k, t := range traces {
		if k == 0 {
			out.Image, out.Version = t.Image, t.Version
		} else {
			if t.Image != out.Image {
				out.Image = ""
			}
			if t.Version != out.Version {
				out.Version = 0
			}
		}
		out.Boots += max(t.Boots, 1)
		for pos, it := range t.Items {
			a := byID[it.ID]
			if a == nil {
				a = &acc{item: it, first: len(order)}
				byID[it.ID] = a
				order = append(order, a)
			}
			a.sum += float64(pos)
			a.n++
		}
	}
	slices.SortStableFunc(order, func(x, y *acc) int {
		rx, ry := x.sum/float64(x.n), y.sum/float64(y.n)
		switch {
		case rx < ry:
			return -1
		case rx > ry:
			return 1
		}
		return x.first - y.first
	})
	out.Items = make([]Item, len(order))
	for i, a := range order {
		out.Items[i] = a.item
	}
	return out
}

// ApplyResult says how a trace mapped onto an index.
type ApplyResult struct {
	Profile index.Profile
	Missing int // chunks of the trace the index does not have (another version's)
}

// Apply turns a trace into the profile of ix: each chunk becomes the entry of ix that holds
// it (the recorded entry when it still holds that chunk, else the first entry that does).
// Chunks ix does not have are left out and counted.
func Apply(ix *index.Index, tr *Trace) ApplyResult {
	var first map[chunk.ID]int
	lookup := func(id chunk.ID) (int, bool) {
		if first == nil {
			first = make(map[chunk.ID]int, len(ix.Entries))
			for i, e := range ix.Entries {
				if _, ok := first[e.ID]; !ok && !e.Zero {
					first[e.ID] = i
				}
			}
		}
		i, ok := first[id]
		return i, ok
	}
	res := ApplyResult{Profile: index.Profile{Boots: uint32(max(tr.Boots, 0))}}
	used := map[int]bool{}
	for _, it := range tr.Items {
		i := it.Entry
		if i < 0 || i >= len(ix.Entries) || ix.Entries[i].Zero || ix.Entries[i].ID != it.ID {
			var ok bool
			if i, ok = lookup(it.ID); !ok {
				res.Missing++
				continue
			}
		}
		if !used[i] {
			used[i] = true
			res.Profile.Entries = append(res.Profile.Entries, i)
		}
	}
	return res
}

// Coverage is how much of a boot a profile held.
type Coverage struct {
	Chunks, Covered int   // chunks the boot read; those in the profile
	Bytes, CovBytes int64 // their plain bytes
}

// Fraction is Covered / Chunks (1 for a boot that read nothing).
func (c Coverage) Fraction() float64 {
	if c.Chunks == 0 {
		return 1
	}
	return float64(c.Covered) / float64(c.Chunks)
}

// Measure returns how much of boot the profile covered: of the chunks the boot read, how
// many (and how many bytes) the profile would have prefetched.
func Measure(profile, boot *Trace) Coverage {
	in := make(map[chunk.ID]bool, len(profile.Items))
	for _, it := range profile.Items {
		in[it.ID] = true
	}
	var c Coverage
	for _, it := range boot.Items {
		c.Chunks++
		c.Bytes += int64(it.Len)
		if in[it.ID] {
			c.Covered++
			c.CovBytes += int64(it.Len)
		}
	}
	return c
}
