// Package replica copies images from one store to another (a mirror, a bucket, a
// disconnected site): only the chunks the destination lacks, in parallel, each verified
// against its name; then the images' files, indexes first and pointers last, so that the
// destination never advertises a version whose chunks it does not hold. An interrupted sync
// leaves chunks but no new index: run again, it copies only the rest.
package replica

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// Verifier checks the signed files a sync copies (trust.Verifier); nil copies them
// unchecked (clients verify them anyway; a mirror operator may want to refuse junk).
type Verifier interface {
	Pointer(name string, raw []byte) ([]byte, error)
	Text(what string, raw []byte) ([]byte, error)
	Check(ix *index.Index, file []byte, name string, version uint64) error
}

// Options control a sync.
type Options struct {
	Images   []string // empty: every image of the source
	Parallel int      // chunks copied at once (default 8)
	Verifier Verifier
	// Planned is told, once the chunks to copy are known, how many and how many bytes.
	Planned func(chunks int, bytes int64)
	// Copied is told the stored bytes of each chunk copied.
	Copied func(bytes int64)
	Log    func(format string, args ...any)
}

// Result is what a sync did.
type Result struct {
	Images, Versions int
	Chunks           int   // distinct chunks the images reference
	Present          int   // of them, already in the destination
	Copied           int   // copied now
	CopiedBytes      int64 // stored bytes copied
	Files            int   // metadata files written
}

// image is what the sync learnt about one image of the source.
type image struct {
	name     string
	versions []uint64
	indexes  map[uint64][]byte
	latest   []byte // raw pointer file (nil: none)
	versFile []byte // raw versions file (nil: none)
	// archLatest are the per-architecture pointers (latest.ARCH), raw, by architecture.
	archLatest map[string][]byte
}

// Sync copies images from src to dst.
func Sync(ctx context.Context, src store.Store, dst store.Writer, opt Options) (*Result, error) {
	if opt.Parallel <= 0 {
		opt.Parallel = 8
	}
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	names := opt.Images
	if len(names) == 0 {
		var err error
		if names, err = sourceNames(ctx, src); err != nil {
			return nil, err
		}
	}
	res := &Result{}
	var images []*image
	need := map[chunk.ID]chunk.Ref{}
	for _, n := range names {
		im, err := readImage(ctx, src, n, opt.Verifier)
		if err != nil {
			return nil, err
		}
		for _, v := range im.versions {
			ix, err := index.Decode(im.indexes[v])
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", src, store.IndexPath(n, v), err)
			}
			for _, e := range ix.Entries {
				if !e.Zero {
					need[e.ID] = chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored}
				}
			}
		}
		images = append(images, im)
		res.Images++
		res.Versions += len(im.versions)
	}
	res.Chunks = len(need)

	// What the destination holds: one listing, not a request per chunk.
	have := map[chunk.ID]bool{}
	if err := dst.Chunks(ctx, func(id chunk.ID, size int64) error {
		if size > 0 {
			have[id] = true
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing the chunks of %s: %w", dst, err)
	}
	var todo []chunk.Ref
	var todoBytes int64
	for id, ref := range need {
		if have[id] {
			res.Present++
			continue
		}
		todo = append(todo, ref)
		todoBytes += int64(ref.Stored)
	}
	slices.SortFunc(todo, func(a, b chunk.Ref) int { return slices.Compare(a.ID[:], b.ID[:]) })
	if opt.Planned != nil {
		opt.Planned(len(todo), todoBytes)
	}
	var copied, copiedBytes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Parallel)
	var verify store.Fetcher = store.Verify(src)
	if f, ok := src.(store.Fetcher); ok {
		verify = f // a mirror set verifies each chunk itself, and fails over to the next source
	}
	for _, ref := range todo {
		g.Go(func() error {
			got, err := verify.Fetch(gctx, ref) // a chunk that does not match its name is refused
			if err != nil {
				return fmt.Errorf("chunk %s: %w", ref.ID, err)
			}
			if _, err := dst.PutChunk(gctx, ref.ID, got.Raw); err != nil {
				return err
			}
			copied.Add(1)
			copiedBytes.Add(int64(len(got.Raw)))
			if opt.Copied != nil {
				opt.Copied(int64(len(got.Raw)))
			}
			return nil
		})
	}
	err := g.Wait()
	res.Copied, res.CopiedBytes = int(copied.Load()), copiedBytes.Load()
	if err != nil {
		return res, err
	}
	if sy, ok := dst.(interface{ Sync() error }); ok {
		if err := sy.Sync(); err != nil {
			return res, err
		}
	}
	// Every chunk is there: now the files, in publishing order.
	for _, im := range images {
		n, err := writeImage(ctx, src, dst, im)
		res.Files += n
		if err != nil {
			return res, err
		}
	}
	if err := catalog.WriteNames(ctx, dst); err != nil {
		return res, err
	}
	res.Files++
	return res, nil
}

// sourceNames lists the images of src: by listing it when it can be listed, else from
// its catalogue.
func sourceNames(ctx context.Context, src store.Store) ([]string, error) {
	if w, ok := src.(store.Writer); ok {
		if names, err := catalog.Names(ctx, w); err == nil {
			return names, nil
		}
	}
	b, err := src.File(ctx, catalog.NamesPath, catalog.MaxNames)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%s has no %s to list its images from: name them with --image", src, catalog.NamesPath)
		}
		return nil, err
	}
	names, err := catalog.ParseNames(b)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", src, catalog.NamesPath, err)
	}
	return names, nil
}

const maxIndexFile = index.MaxFile

// readImage fetches (and, with v, verifies) the pointer, versions file and every index of
// an image.
func readImage(ctx context.Context, src store.Store, name string, v Verifier) (*image, error) {
	if err := index.ValidName(name); err != nil {
		return nil, err
	}
	im := &image{name: name, indexes: map[uint64][]byte{}, archLatest: map[string][]byte{}}
	arches := map[string]bool{}
	optional := func(p string, max int64) ([]byte, error) {
		b, err := src.File(ctx, p, max)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return b, err
	}
	var err error
	var pv catalog.PointerVerifier
	if v != nil {
		pv = v
	}
	var ptr *index.Pointer
	if im.latest, ptr, err = catalog.ReadPointer(ctx, src, store.LatestPath(name), name, pv); err != nil {
		return nil, err
	}
	var pinned map[uint64][32]byte // version -> index sha256, from the versions file
	if im.versFile, err = optional(catalog.VersionsPath(name), catalog.MaxVersions); err != nil {
		return nil, err
	}
	if im.versFile != nil {
		text, _ := trust.SplitPointer(im.versFile)
		if v != nil {
			if text, err = v.Text("versions file of "+name, im.versFile); err != nil {
				return nil, fmt.Errorf("%s/%s: %w", src, catalog.VersionsPath(name), err)
			}
		}
		vs, err := catalog.ParseVersions(text)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", src, catalog.VersionsPath(name), err)
		}
		if vs.Name != name {
			return nil, fmt.Errorf("%s/%s: lists image %q (mix-and-match)", src, catalog.VersionsPath(name), vs.Name)
		}
		pinned = map[uint64][32]byte{}
		for _, d := range vs.Versions {
			pinned[d.Version] = d.SHA256
		}
	}
	// Which versions: a listing where there is one, else the versions file, else latest.
	if w, ok := src.(store.Writer); ok {
		if listed, lerr := catalog.Listed(ctx, w, name); lerr == nil {
			im.versions = listed
		}
	}
	if im.versions == nil {
		for ver := range pinned {
			im.versions = append(im.versions, ver)
		}
		if ptr != nil && !slices.Contains(im.versions, ptr.Version) {
			im.versions = append(im.versions, ptr.Version)
		}
		slices.Sort(im.versions)
	}
	if len(im.versions) == 0 {
		return nil, fmt.Errorf("image %q not found in %s", name, src)
	}
	for _, ver := range im.versions {
		p := store.IndexPath(name, ver)
		file, err := src.File(ctx, p, maxIndexFile)
		if err != nil {
			return nil, err
		}
		if want, ok := pinned[ver]; ok {
			if sha256.Sum256(file) != want {
				return nil, fmt.Errorf("%s/%s: does not match the sha256 its versions file lists", src, p)
			}
		}
		if ptr != nil && ptr.Version == ver && !ptr.Matches(file) {
			return nil, fmt.Errorf("%s/%s: does not match the sha256 the latest pointer pins", src, p)
		}
		ix, err := index.Decode(file)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", src, p, err)
		}
		if ix.Name != name || ix.Version != ver {
			return nil, fmt.Errorf("%s/%s: holds image %s version %d (mix-and-match)", src, p, ix.Name, ix.Version)
		}
		if v != nil {
			if err := v.Check(ix, file, name, ver); err != nil && !errors.Is(err, trust.ErrExpired) {
				return nil, fmt.Errorf("%s/%s: %w", src, p, err)
			}
		}
		im.indexes[ver] = file
		if ix.Arch != "" {
			arches[ix.Arch] = true
		}
	}
	// The pointer of each architecture an index records, checked as latest is.
	for _, a := range slices.Sorted(maps.Keys(arches)) {
		pp := store.LatestArchPath(name, a)
		raw, p, err := catalog.ReadPointer(ctx, src, pp, name, pv)
		if err != nil {
			return nil, err
		}
		if p == nil {
			continue
		}
		file, ok := im.indexes[p.Version]
		if !ok || !p.Matches(file) {
			return nil, fmt.Errorf("%s/%s: does not pin one of the image's indexes (mix-and-match)", src, pp)
		}
		im.archLatest[a] = raw
	}
	return im, nil
}

// writeImage writes an image's files to dst in publishing order: indexes, the versions
// file, the latest pointer; each detached signature just before its file. Files dst
// already holds unchanged are not rewritten. It returns how many files it wrote.
func writeImage(ctx context.Context, src store.Store, dst store.Writer, im *image) (int, error) {
	n := 0
	put := func(p string, data []byte) error {
		if data == nil {
			return nil
		}
		if old, err := dst.File(ctx, p, int64(len(data))); err == nil && string(old) == string(data) {
			return nil
		}
		if err := dst.PutFile(ctx, p, data); err != nil {
			return err
		}
		n++
		return nil
	}
	withSig := func(p string, data []byte) error {
		if data == nil {
			return nil
		}
		sig, err := src.File(ctx, p+catalog.SignatureSuffix, 64<<10)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := put(p+catalog.SignatureSuffix, sig); err != nil {
			return err
		}
		return put(p, data)
	}
	for _, ver := range im.versions {
		if err := withSig(store.IndexPath(im.name, ver), im.indexes[ver]); err != nil {
			return n, err
		}
	}
	if im.versFile != nil {
		if err := withSig(catalog.VersionsPath(im.name), im.versFile); err != nil {
			return n, err
		}
	} else { // a source published before versions files: describe what was copied
		vs, err := catalog.Rebuild(ctx, dst, im.name, nil)
		if err != nil {
			return n, err
		}
		if err := catalog.WriteVersions(ctx, dst, vs, nil); err != nil {
			return n, err
		}
		n++
	}
	for _, a := range slices.Sorted(maps.Keys(im.archLatest)) {
		if err := withSig(store.LatestArchPath(im.name, a), im.archLatest[a]); err != nil {
			return n, err
		}
	}
	if err := withSig(store.LatestPath(im.name), im.latest); err != nil {
		return n, err
	}
	return n, nil
}
