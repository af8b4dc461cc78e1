// Package gc removes what a store no longer needs: versions beyond the newest N of each
// image (never the one latest points to), then every chunk that no remaining version
// references.
//
// Safety with writers running at the same time: a pack or sync writes chunks before the
// index that references them (or reuses chunks already there). They hold the store's lock
// shared and gc holds it exclusive (store.Dir.Lock, a flock; store.S3Lock, marker objects),
// so gc never runs between the two. For writers that take no lock (another host writing
// over NFS without flock, older versions, other tools), a chunk modified within the grace
// period is kept even when nothing references it yet.
package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// Store is what gc needs of a store: writing, listing chunks with their times, and
// removing files (store.Dir and store.S3).
type Store interface {
	store.Writer
	ChunkTimes(ctx context.Context, fn func(id chunk.ID, size int64, mod time.Time) error) error
	RemoveFile(ctx context.Context, name string) error
}

// TempStore is implemented by stores whose writers leave temporary files behind when
// interrupted (store.Dir): gc removes those older than the grace period.
type TempStore interface {
	TempFiles(ctx context.Context, fn func(store.TempFile) error) error
	RemoveTemp(ctx context.Context, name string) error
}

// Options control a collection.
type Options struct {
	Keep int // versions kept per image and architecture (at least 1); latest's is always kept
	// KeepWithin also keeps every version that was current within this long before now:
	// published within it, or replaced (by the next version of its architecture) within
	// it. A machine that booted a version before it was replaced keeps reading its
	// chunks: this is how long such a machine may stay up (0: no window).
	KeepWithin time.Duration
	Grace      time.Duration // unreferenced chunks modified more recently are kept
	DryRun     bool          // only count
	// Signer re-signs the versions files of signed images whose versions gc removes.
	Signer catalog.Signer
	Now    func() time.Time
	// Held, when set, is asked before every removal and write, and stops gc with its
	// error: a lock that can be lost (store.S3Lock) must still be held when gc acts on
	// what it decided under it.
	Held func() error
}

func (opt Options) held() error {
	if opt.Held == nil {
		return nil
	}
	return opt.Held()
}

// Result is what a collection did (or, dry, would do).
type Result struct {
	Images          int
	KeptVersions    []string // NAME@V
	RemovedVersions []string
	WindowVersions  []string   // of KeptVersions, those kept only by KeepWithin
	Referenced      int        // distinct chunks the kept versions reference
	Removed         int        // chunks removed
	RemovedChunks   []chunk.ID // which, in the store's listing order
	RemovedBytes    int64      // their stored bytes
	Young           int        // unreferenced chunks kept for the grace period
	YoungBytes      int64
	Temps           int      // temporary files of interrupted writers removed
	TempBytes       int64    // their bytes
	YoungTemps      int      // temporary files kept for the grace period (a writer may still run)
	RemovedTemps    []string // which (names relative to the store)
}

// Run collects garbage in s.
func Run(ctx context.Context, s Store, opt Options) (*Result, error) {
	if opt.Keep < 1 {
		return nil, fmt.Errorf("keep at least 1 version (got %d)", opt.Keep)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	start := opt.Now()
	files, err := s.Files(ctx, "images/")
	if err != nil {
		return nil, fmt.Errorf("listing %s/images: %w", s, err)
	}
	var names []string
	for _, f := range files {
		if parts := strings.Split(f, "/"); len(parts) == 3 && strings.HasSuffix(f, ".index") && index.ValidName(parts[1]) == nil {
			names = append(names, parts[1])
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	res := &Result{Images: len(names)}
	mark := map[chunk.ID]bool{}
	for _, name := range names {
		if err := collectImage(ctx, s, name, opt, res, mark); err != nil {
			return res, err
		}
	}
	res.Referenced = len(mark)
	cutoff := start.Add(-opt.Grace)
	var doomed []chunk.ID
	err = s.ChunkTimes(ctx, func(id chunk.ID, size int64, mod time.Time) error {
		if mark[id] {
			return nil
		}
		if mod.After(cutoff) {
			res.Young++
			res.YoungBytes += size
			return nil
		}
		doomed = append(doomed, id)
		res.RemovedBytes += size
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("listing the chunks of %s: %w", s, err)
	}
	res.Removed, res.RemovedChunks = len(doomed), doomed
	temps, err := staleTemps(ctx, s, cutoff, res)
	if err != nil {
		return res, err
	}
	res.RemovedTemps = temps
	if opt.DryRun {
		return res, nil
	}
	for _, id := range doomed {
		if err := opt.held(); err != nil {
			return res, err
		}
		if err := s.RemoveChunk(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, fmt.Errorf("removing chunk %s: %w", id, err)
		}
	}
	for _, name := range temps {
		if err := opt.held(); err != nil {
			return res, err
		}
		if err := s.(TempStore).RemoveTemp(ctx, name); err != nil && !isNotExist(err) {
			return res, fmt.Errorf("removing %s/%s: %w", s, name, err)
		}
	}
	if err := opt.held(); err != nil {
		return res, err
	}
	if err := catalog.WriteNames(ctx, s); err != nil {
		return res, err
	}
	return res, nil
}

// staleTemps lists the temporary files of interrupted writers (an interrupted pack leaves
// chunks/*/.tmp-*) modified before cutoff, and counts them in res. Younger ones may belong
// to a writer still running on another host: they wait for the grace period, like chunks.
func staleTemps(ctx context.Context, s Store, cutoff time.Time, res *Result) ([]string, error) {
	ts, ok := s.(TempStore)
	if !ok {
		return nil, nil
	}
	var stale []string
	err := ts.TempFiles(ctx, func(f store.TempFile) error {
		if f.Mod.After(cutoff) {
			res.YoungTemps++
			return nil
		}
		stale = append(stale, f.Name)
		res.Temps++
		res.TempBytes += f.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the temporary files of %s: %w", s, err)
	}
	return stale, nil
}

// collectImage decides which versions of one image stay, removes the others (unless
// dry), and marks the chunks of those that stay.
func collectImage(ctx context.Context, s Store, name string, opt Options, res *Result, mark map[chunk.ID]bool) error {
	// Every version with an index, described (architecture, publication time) by the
	// versions file or, where it has none, by its index; gc holds the store's lock, so
	// this is also the list it rewrites without the versions it drops.
	vs, err := catalog.Rebuild(ctx, s, name, nil)
	if err != nil {
		return err
	}
	listed := make([]uint64, len(vs.Versions))
	for i, d := range vs.Versions {
		listed[i] = d.Version
	}
	pinned, err := pointedTo(ctx, s, name)
	if err != nil {
		return err
	}
	// Keep applies per architecture: an image published for amd64 and arm64 keeps the
	// newest Keep versions of each, so frequent amd64 updates never collect arm64's.
	var keep, drop, window []uint64
	newer := map[string]int{}
	replacedAt := map[string]time.Time{} // per architecture: when the newer version came
	since := opt.Now().Add(-opt.KeepWithin)
	for _, v := range slices.Backward(listed) {
		d, _ := vs.Find(v)
		a := d.Arch
		current := opt.KeepWithin > 0 && (!d.Created.Before(since) || !replacedAt[a].IsZero() && !replacedAt[a].Before(since))
		switch {
		case newer[a] < opt.Keep || pinned[v]:
			keep = append(keep, v)
		case current:
			keep = append(keep, v)
			window = append(window, v)
		default:
			drop = append(drop, v)
		}
		newer[a]++
		replacedAt[a] = d.Created
	}
	slices.Sort(window)
	for _, v := range window {
		res.WindowVersions = append(res.WindowVersions, fmt.Sprintf("%s@%d", name, v))
	}
	slices.Sort(keep)
	slices.Sort(drop)
	for _, v := range keep {
		p := store.IndexPath(name, v)
		file, err := s.File(ctx, p, index.MaxFile)
		if err != nil {
			return err
		}
		ix, err := index.Decode(file)
		if err != nil {
			// An index gc cannot read might still be used: keep everything rather than
			// guess.
			return fmt.Errorf("%s/%s: %w (nothing removed)", s, p, err)
		}
		for _, e := range ix.Entries {
			if !e.Zero {
				mark[e.ID] = true
			}
		}
		res.KeptVersions = append(res.KeptVersions, fmt.Sprintf("%s@%d", name, v))
	}
	for _, v := range drop {
		res.RemovedVersions = append(res.RemovedVersions, fmt.Sprintf("%s@%d", name, v))
	}
	if len(drop) == 0 || opt.DryRun {
		return nil
	}
	// The versions file stops listing them before they go.
	vsPath := catalog.VersionsPath(name)
	signed := false
	if b, err := s.File(ctx, vsPath, catalog.MaxVersions); err == nil {
		_, sig := trust.SplitPointer(b)
		signed = len(sig) > 0
	}
	if signed && opt.Signer == nil {
		return fmt.Errorf("%s/%s is signed: give the publisher's --key to re-sign it without the versions gc removes (nothing removed for %s)", s, vsPath, name)
	}
	vs.Versions = slices.DeleteFunc(vs.Versions, func(d catalog.Version) bool { return slices.Contains(drop, d.Version) })
	var signer catalog.Signer
	if signed || opt.Signer != nil {
		signer = opt.Signer
	}
	if err := opt.held(); err != nil {
		return err
	}
	if err := catalog.WriteVersions(ctx, s, vs, signer); err != nil {
		return err
	}
	for _, v := range drop {
		if err := opt.held(); err != nil {
			return err
		}
		p := store.IndexPath(name, v)
		for _, f := range []string{p, p + catalog.SignatureSuffix} {
			if err := s.RemoveFile(ctx, f); err != nil && !isNotExist(err) {
				return fmt.Errorf("removing %s/%s: %w", s, f, err)
			}
		}
	}
	return nil
}

func isNotExist(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// pointedTo returns the versions image name's pointers name: latest and each latest.ARCH.
func pointedTo(ctx context.Context, s Store, name string) (map[uint64]bool, error) {
	files, err := s.Files(ctx, "images/"+name+"/")
	if err != nil {
		return nil, fmt.Errorf("store %s: listing images/%s: %w", s, name, err)
	}
	pinned := map[uint64]bool{}
	for _, f := range files {
		base := path.Base(f)
		if base != "latest" && (!strings.HasPrefix(base, "latest.") || strings.HasSuffix(base, ".minisig") || index.ValidArch(strings.TrimPrefix(base, "latest.")) != nil) {
			continue
		}
		v, ok, err := catalog.PointedVersion(ctx, s, f, name)
		if err != nil {
			return nil, err
		}
		if ok {
			pinned[v] = true
		}
	}
	return pinned, nil
}
