package index

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// sampleIndex returns a valid index of n entries: data chunks of varying sizes, with a
// zero run every fifth entry and some chunks repeated.
func sampleIndex(n int) *Index {
	ix := &Index{
		Name:     "debian-12.img",
		Version:  42,
		Created:  time.Date(2026, 11, 25, 12, 30, 0, 0, time.UTC),
		Expires:  time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Chunking: chunk.Params{Kind: chunk.KindCDC, Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10, Align: 4096},
	}
	var off int64
	for i := 0; i < n; i++ {
		e := Entry{Off: off, Len: uint32(4096 * (1 + i%50))}
		if i%5 == 4 {
			e.Zero = true
			e.Len = uint32(64<<10) * uint32(1+i%3)
		} else {
			e.ID = chunk.Sum([]byte{byte(i % 7), byte(i >> 8), byte(i)})
			if i%7 == 3 {
				e.ID = chunk.Sum([]byte("repeated"))
			}
			e.Stored = e.Len/3 + 1
		}
		ix.Entries = append(ix.Entries, e)
		off += int64(e.Len)
	}
	ix.Size = off
	return ix
}

func mustEncode(t testing.TB, ix *Index) []byte {
	t.Helper()
	b, err := Encode(ix)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The rest of this file is an independent encoder written from docs/format.md, so tests
// can build files Encode would never write (and check Encode against the document).

type rawSection struct {
	typ, flags uint32
	payload    []byte
}

func headerPayload(ix *Index) []byte {
	le := binary.LittleEndian
	var b []byte
	b = le.AppendUint64(b, ix.Version)
	b = le.AppendUint64(b, uint64(unixOrZero(ix.Created)))
	b = le.AppendUint64(b, uint64(unixOrZero(ix.Expires)))
	b = le.AppendUint64(b, uint64(ix.Size))
	b = append(b, byte(ix.Chunking.Kind), 0, 0, 0)
	for _, v := range []uint32{ix.Chunking.Min, ix.Chunking.Avg, ix.Chunking.Max, ix.Chunking.Align} {
		b = le.AppendUint32(b, v)
	}
	b = le.AppendUint16(b, uint16(len(ix.Name)))
	b = append(b, ix.Name...)
	if ix.Arch != "" {
		b = append(b, byte(len(ix.Arch)))
		b = append(b, ix.Arch...)
	}
	return b
}

func entryRecord(e Entry) []byte {
	le := binary.LittleEndian
	var b []byte
	b = le.AppendUint64(b, uint64(e.Off))
	b = le.AppendUint32(b, e.Len)
	b = le.AppendUint32(b, e.Stored)
	if e.Zero {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, e.ID[:]...)
}

func chunksPayload(count uint64, entries []Entry) []byte {
	b := binary.LittleEndian.AppendUint64(nil, count)
	for _, e := range entries {
		b = append(b, entryRecord(e)...)
	}
	return b
}

func sectionsOf(ix *Index) []rawSection {
	secs := []rawSection{
		{1, 1, headerPayload(ix)},
		{2, 1, chunksPayload(uint64(len(ix.Entries)), ix.Entries)},
	}
	if len(ix.Profile.Entries) > 0 {
		secs = append(secs, rawSection{3, 0, profilePayload(ix.Profile.Boots, uint32(len(ix.Profile.Entries)), ix.Profile.Entries)})
	}
	return secs
}

// profilePayload is a profile section's payload (docs/format.md 3.5): boots, count, then
// one u32 entry index per item.
func profilePayload(boots, count uint32, entries []int) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, boots)
	b = le.AppendUint32(b, count)
	for _, i := range entries {
		b = le.AppendUint32(b, uint32(i))
	}
	return b
}

// withProfile returns a copy of ix whose profile lists its data entries in reverse order
// (a boot reading the end of the image first), every other one.
func withProfile(ix *Index) *Index {
	c := *ix
	c.Profile = Profile{Boots: 3}
	for i := len(ix.Entries) - 1; i >= 0; i-- {
		if !ix.Entries[i].Zero && i%2 == 0 {
			c.Profile.Entries = append(c.Profile.Entries, i)
		}
	}
	return &c
}

func bodyOf(secs []rawSection) []byte {
	le := binary.LittleEndian
	var b []byte
	for _, s := range secs {
		b = le.AppendUint32(b, s.typ)
		b = le.AppendUint32(b, s.flags)
		b = le.AppendUint64(b, uint64(len(s.payload)))
		b = append(b, s.payload...)
	}
	return b
}

func compress(b []byte) []byte {
	e, _ := zstd.NewWriter(nil)
	defer e.Close()
	return e.EncodeAll(b, nil)
}

// fileOf assembles an index file around an already compressed body.
func fileOf(version uint16, zbody []byte, sig []byte) []byte {
	le := binary.LittleEndian
	b := []byte(Magic)
	b = le.AppendUint16(b, version)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint64(b, uint64(len(zbody)))
	b = append(b, zbody...)
	b = le.AppendUint32(b, uint32(len(sig)))
	return append(b, sig...)
}

func build(secs []rawSection) []byte { return fileOf(FormatVersion, compress(bodyOf(secs)), nil) }

func decompress(t testing.TB, z []byte) []byte {
	t.Helper()
	d, _ := zstd.NewReader(nil)
	defer d.Close()
	b, err := d.DecodeAll(z, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
