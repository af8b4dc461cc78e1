// Package seed lets local data supply chunks: an older image file, a block device holding a
// previous version, a chunk cache or store directory. A machine that has version 1 of an
// image then fetches, for version 2, only the chunks version 1 lacks.
//
// A seed file is cut with the new index's chunking (for filesystem-aware indexes, with the
// cut points of the seed's own metadata, falling back to content-defined cuts), and every
// piece whose hash is a chunk the new index needs is remembered by its place in the seed.
// Chunks still missing are then looked for at their own offset in the seed (a file updated
// in place keeps its blocks where they were). Nothing is believed until it is read again
// and its SHA-256 matches: the seed may change after the scan, and a block device may be
// written to while it serves.
package seed

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/fschunk"
	"github.com/nowhere-boot/nowhere/internal/fstype"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// Options tune a seed set.
type Options struct {
	// Encode makes fetches from seed files return the compressed chunk too (Fetched.Raw),
	// for callers that keep what they fetch (a disk cache). Without it Raw is nil.
	Encode bool
	// Log receives a line per seed (what it holds) and read errors (nil: silent).
	Log func(format string, args ...any)
}

// place is where a needed chunk lies in a seed file.
type place struct {
	file int
	off  int64
}

// Set is a group of seeds scanned for the chunks of one index.
type Set struct {
	opt   Options
	files []*os.File
	dirs  []*store.Dir
	where map[chunk.ID]place

	hits, hitBytes, misses atomic.Int64
}

// Stats count what the seeds supplied.
type Stats struct {
	Hits, HitBytes, Misses int64
}

// Open scans the seeds at paths (image files, block devices, chunk directories) for the
// chunks ix needs. A seed that cannot be opened or read is an error: the user named it.
func Open(ctx context.Context, paths []string, ix *index.Index, opt Options) (*Set, error) {
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	need := make(map[chunk.ID]uint32)
	var needBytes int64
	for _, e := range ix.Entries {
		if !e.Zero {
			if _, ok := need[e.ID]; !ok {
				needBytes += int64(e.Len)
			}
			need[e.ID] = e.Len
		}
	}
	s := &Set{opt: opt, where: make(map[chunk.ID]place)}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("seed %s: %w", p, unwrapPath(err))
		}
		if st.IsDir() {
			d, err := store.OpenDir(p)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("seed %w", err)
			}
			s.dirs = append(s.dirs, d)
			n, b := 0, int64(0)
			for id, l := range need {
				if _, ok, _ := d.HasChunk(ctx, id); ok {
					n, b = n+1, b+int64(l)
				}
			}
			opt.Log("seed %s: a chunk directory holding %d of the %d chunks needed (%s of %s)", p, n, len(need), units.Bytes(b), units.Bytes(needBytes))
			continue
		}
		found, bytes, how, err := s.scanFile(ctx, p, ix, need)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("seed %s: %w", p, err)
		}
		opt.Log("seed %s: holds %d of the %d chunks needed (%s of %s; %s)", p, found, len(need), units.Bytes(bytes), units.Bytes(needBytes), how)
	}
	return s, nil
}

// Close releases the seed files and directories.
func (s *Set) Close() error {
	for _, f := range s.files {
		f.Close()
	}
	for _, d := range s.dirs {
		d.Close()
	}
	return nil
}

// Stats returns what the seeds supplied so far.
func (s *Set) Stats() Stats {
	return Stats{Hits: s.hits.Load(), HitBytes: s.hitBytes.Load(), Misses: s.misses.Load()}
}

// Len returns how many needed chunks the seed files were found to hold.
func (s *Set) Len() int { return len(s.where) }

// scanFile indexes one seed file or block device. It returns how many needed chunks
// (and bytes) it newly found, and how it was cut.
func (s *Set) scanFile(ctx context.Context, p string, ix *index.Index, need map[chunk.ID]uint32) (int, int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, 0, "", unwrapPath(err)
	}
	size, err := f.Seek(0, io.SeekEnd) // regular files and block devices alike
	if err != nil {
		f.Close()
		return 0, 0, "", err
	}
	fi := len(s.files)
	s.files = append(s.files, f)
	ck, how, err := seedChunker(f, size, ix.Chunking)
	if err != nil {
		return 0, 0, "", err
	}
	found, bytes := 0, int64(0)
	record := func(id chunk.ID, off int64, n int) {
		if l, ok := need[id]; ok && int(l) == n {
			if _, dup := s.where[id]; !dup {
				s.where[id] = place{file: fi, off: off}
				found++
				bytes += int64(n)
			}
		}
	}
	sp := chunk.NewSplitter(io.NewSectionReader(f, 0, size), ck)
	for {
		if err := ctx.Err(); err != nil {
			return 0, 0, "", err
		}
		piece, err := sp.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, "", fmt.Errorf("reading at offset %d: %w", sp.Offset(), err)
		}
		if !piece.Zero {
			record(chunk.Sum(piece.Data), piece.Off, piece.Len)
		}
	}
	// Chunks still missing may lie at their own offset (an image updated in place).
	byOffset := 0
	buf := make([]byte, 0, ck.MaxLen())
	for _, e := range ix.Entries {
		if e.Zero || e.End() > size {
			continue
		}
		if _, ok := s.where[e.ID]; ok {
			continue
		}
		buf = buf[:e.Len]
		if _, err := f.ReadAt(buf, e.Off); err != nil {
			return 0, 0, "", fmt.Errorf("reading at offset %d: %w", e.Off, err)
		}
		if chunk.Sum(buf) == e.ID {
			record(e.ID, e.Off, int(e.Len))
			byOffset++
		}
	}
	if byOffset > 0 {
		how += fmt.Sprintf(", %d of them at the same offset", byOffset)
	}
	return found, bytes, how, nil
}

// seedChunker returns the chunker that cuts the seed as the new image was cut: the same
// parameters, and for filesystem-aware indexes the seed's own file boundaries.
func seedChunker(f *os.File, size int64, p chunk.Params) (chunk.Chunker, string, error) {
	if p.Kind != chunk.KindFS {
		ck, err := chunk.FromParams(p)
		if err != nil {
			return nil, "", fmt.Errorf("the new index's chunking %s: %w", p, err)
		}
		return ck, "cut " + p.String(), nil
	}
	cdcParams := p
	cdcParams.Kind = chunk.KindCDC
	ck, err := chunk.FromParams(cdcParams)
	if err != nil {
		return nil, "", fmt.Errorf("the new index's chunking %s: %w", p, err)
	}
	cdc, ok := ck.(*chunk.CDC)
	if !ok {
		return ck, "cut " + cdcParams.String(), nil
	}
	head := make([]byte, fstype.HeaderSize)
	n, _ := f.ReadAt(head, 0)
	t := fstype.Detect(head[:n])
	if t == fstype.Unknown {
		return ck, "not a known filesystem: cut " + cdcParams.String(), nil
	}
	l, err := fschunk.Read(t, f, size)
	if err != nil {
		return ck, fmt.Sprintf("%s metadata unreadable (%v): cut %s", t, err, cdcParams), nil
	}
	return fschunk.NewChunker(l, cdc), fmt.Sprintf("cut at its %s file boundaries, %s between", t, cdcParams), nil
}

// Fetcher returns a Fetcher that takes chunks from the seeds when they hold them (hash
// checked) and from inner otherwise.
func (s *Set) Fetcher(inner store.Fetcher) store.Fetcher { return fetcher{s, inner} }

type fetcher struct {
	s     *Set
	inner store.Fetcher
}

func (f fetcher) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	if got, ok := f.s.get(ctx, ref); ok {
		f.s.hits.Add(1)
		f.s.hitBytes.Add(int64(ref.Len))
		return got, nil
	}
	f.s.misses.Add(1)
	return f.inner.Fetch(ctx, ref)
}

// get returns the chunk from a seed that holds it, verified.
func (s *Set) get(ctx context.Context, ref chunk.Ref) (store.Fetched, bool) {
	if p, ok := s.where[ref.ID]; ok {
		buf := make([]byte, ref.Len)
		_, err := s.files[p.file].ReadAt(buf, p.off)
		switch {
		case err != nil:
			s.opt.Log("seed %s: %v", s.files[p.file].Name(), err)
		case sha256.Sum256(buf) != ref.ID:
			s.opt.Log("seed %s: chunk %s changed since the scan (offset %d): fetching it", s.files[p.file].Name(), ref.ID, p.off)
		default:
			got := store.Fetched{Plain: buf}
			if s.opt.Encode {
				got.Raw = chunk.Encode(nil, buf)
			}
			return got, true
		}
	}
	for _, d := range s.dirs {
		raw, err := d.Chunk(ctx, chunk.Ref{ID: ref.ID}) // its size need not match the index's
		if err != nil {
			continue
		}
		if plain, err := chunk.Decode(nil, ref.ID, int(ref.Len), raw); err == nil {
			return store.Fetched{Raw: raw, Plain: plain}, true
		}
	}
	return store.Fetched{}, false
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
