// Package index defines what an image is: its name and version, its size, how it was
// chunked and, for every run of bytes, the chunk that holds it. docs/format.md documents
// the encoding byte by byte.
package index

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// Entry is one run of the image: a stored chunk, or zeros that are never stored.
type Entry struct {
	Off    int64
	Len    uint32
	Stored uint32 // size of the chunk file (compressed); 0 for zero runs
	Zero   bool
	ID     chunk.ID // zero value for zero runs
}

// End returns the offset just past the entry.
func (e Entry) End() int64 { return e.Off + int64(e.Len) }

// Index describes one version of one image.
type Index struct {
	Name    string
	Version uint64
	// Arch is the machine architecture the image is for, in GOARCH spelling ("amd64",
	// "arm64"); empty means any (an arch-independent data image, or an old index).
	Arch     string
	Created  time.Time
	Expires  time.Time // zero: never
	Size     int64
	Chunking chunk.Params
	Entries  []Entry
	// Profile is the order in which recorded boots first read the image (optional): what
	// a client prefetches at start (internal/profile).
	Profile Profile

	// Signature is the signature block as stored (empty when unsigned). Signing and
	// verification live in a separate package; the format only carries the bytes.
	Signature []byte
	// Signed is the part of the encoded file the signature covers (set by Decode).
	Signed []byte
}

// Profile lists data entries in the order recorded boots first read them.
type Profile struct {
	Boots   uint32 // how many recorded boots were merged into it (informational)
	Entries []int  // indexes into Index.Entries, each a data entry, each at most once
}

// Find returns the index of the entry containing image offset off (0 <= off < Size).
func (ix *Index) Find(off int64) int {
	return sort.Search(len(ix.Entries), func(i int) bool { return ix.Entries[i].End() > off })
}

// Stats summarises an index.
type Stats struct {
	Chunks, Zero, Unique int
	DataBytes, ZeroBytes int64
	StoredBytes          int64 // compressed bytes of the unique chunks
}

// Stats counts entries, and unique chunks with their stored size.
func (ix *Index) Stats() Stats {
	var s Stats
	// Unique chunks are counted by sorting the data entries' positions by ID (4 bytes an
	// entry), not with a set of IDs: a map sized for the 1.37 million entries of the
	// largest index takes some 75 MiB, more than the entries themselves.
	data := make([]int32, 0, len(ix.Entries))
	for i, e := range ix.Entries {
		if e.Zero {
			s.Zero++
			s.ZeroBytes += int64(e.Len)
			continue
		}
		s.Chunks++
		s.DataBytes += int64(e.Len)
		data = append(data, int32(i))
	}
	// Ties keep entry order, so each run starts with an ID's first entry, whose stored
	// size counts.
	slices.SortFunc(data, func(a, b int32) int {
		if c := bytes.Compare(ix.Entries[a].ID[:], ix.Entries[b].ID[:]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for k, i := range data {
		if k == 0 || ix.Entries[i].ID != ix.Entries[data[k-1]].ID {
			s.Unique++
			s.StoredBytes += int64(ix.Entries[i].Stored)
		}
	}
	return s
}

// ValidName reports whether name can name an image: it is used in store paths and URLs.
func ValidName(name string) error {
	if len(name) == 0 || len(name) > 128 {
		return fmt.Errorf("image name %q: must be 1 to 128 characters", name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok || (i == 0 && (r == '.' || r == '-')) {
			return fmt.Errorf("image name %q: use letters, digits, '.', '-' and '_', not starting with '.' or '-'", name)
		}
	}
	return nil
}

// ValidArch reports whether arch can be recorded as an index's architecture: empty
// (any) or 1 to 32 characters from a-z and 0-9 (GOARCH spelling, e.g. amd64, arm64).
func ValidArch(arch string) error {
	if len(arch) > 32 {
		return fmt.Errorf("architecture %q: longer than 32 characters", arch)
	}
	for _, r := range arch {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return fmt.Errorf("architecture %q: use lower-case letters and digits (amd64, arm64)", arch)
		}
	}
	return nil
}

// ArchOrAny returns the index's architecture, or "any" when it records none.
func (ix *Index) ArchOrAny() string {
	if ix.Arch == "" {
		return "any"
	}
	return ix.Arch
}

// CheckArch returns nil when the image can run on a machine of architecture machine
// (GOARCH spelling): its arch is that one, or any. Otherwise the error is the one line
// "image NAME is ARCH, this machine is MACHINE".
func (ix *Index) CheckArch(machine string) error {
	if ix.Arch == "" || ix.Arch == machine {
		return nil
	}
	return fmt.Errorf("image %s is %s, this machine is %s", ix.Name, ix.Arch, machine)
}
