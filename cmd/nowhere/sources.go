package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/seed"
	"github.com/nowhere-boot/nowhere/internal/source"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// sourceOptions are the flags of every command that reads a store: where the chunks may
// come from (the store in SOURCE, more mirrors, the mirrors the store lists, a local
// cache, seeds) and how long a read waits when none answers. openStore and openSeeds
// open the sources; internal/source composes them, in its one order:
//
//	disk cache (quota, LRU, verified) -> seeds -> [LAN peers] -> mirror set (ranked, failover, hedging, verified) -> stores
type sourceOptions struct {
	mirrors   []string
	noList    bool
	cacheDir  string
	cacheSize string
	timeout   time.Duration
	metrics   store.Observer // nil: none

	seedPaths []string

	// quietProbe, set by the verbs that read a few files and end (ls, diff, sync), holds
	// the startup probe's lines back and drops them when no source answered it: the reads
	// that follow then fail at once with an error naming every source and what it said,
	// which is the whole story in one line.
	quietProbe bool

	set   *store.MirrorSet
	cache *store.DiskCache
	// indexVia, when set, wraps the store the index is loaded through, once the mirror
	// set and cache exist (LAN peers: share.go).
	indexVia func(s store.Store, loc image.Location) (store.Store, error)
	seeds    *seed.Set
}

func (o *sourceOptions) addFlags(f *pflag.FlagSet, withCache bool) {
	f.StringArrayVar(&o.mirrors, "mirror", nil, "another source of the same store: an http(s) URL or a directory (repeatable)")
	f.BoolVar(&o.noList, "no-mirror-list", false, "do not use the mirrors listed in the store's mirrors file")
	if withCache {
		f.StringVar(&o.cacheDir, "cache", "", "keep fetched chunks in this directory (a local store, also read when offline)")
		sizeVar(f, &o.cacheSize, "cache-size", "4G", "most bytes of chunks the --cache directory keeps (least recently used go first; 0: no limit)")
		f.StringArrayVar(&o.seedPaths, "seed", nil, "local data that may hold chunks: an older image file, a block device, a chunk directory (repeatable; hash checked)")
	}
}

// openStore builds the mirror set for the store at first plus the --mirror sources, and
// the disk cache in front of it. The result serves the image's metadata files (from the
// cache when no mirror answers) and is what fetcher() fetches chunks through.
func (o *sourceOptions) openStore(ctx context.Context, first string, httpOpt store.HTTPOptions) (store.Store, error) {
	var stores []store.Store
	log := logf
	var held *heldLines
	if o.quietProbe {
		held = &heldLines{}
		log = held.logf
	}
	for i, base := range append([]string{first}, o.mirrors...) {
		s, err := openReadStore(ctx, base, httpOpt)
		if err != nil {
			if i > 0 {
				return nil, fmt.Errorf("--mirror: %w", err)
			}
			return nil, err
		}
		stores = append(stores, s)
	}
	set, err := store.NewMirrorSet(stores, store.MirrorOptions{
		Wait:    store.Policy{Timeout: o.timeout, Log: log, Failures: store.NewFailures(log, 0)},
		Log:     log,
		Metrics: o.metrics,
	})
	if err != nil {
		return nil, err
	}
	o.set = set
	pctx, cancel := context.WithTimeout(ctx, store.StartupProbe)
	set.Probe(pctx)
	if !o.noList {
		set.Learn(pctx, httpOpt)
	}
	cancel()
	if held != nil {
		held.release(anyUp(set))
	}
	if o.cacheDir == "" {
		return set, nil
	}
	quota, err := units.ParseBytes(o.cacheSize)
	if err != nil {
		return nil, fmt.Errorf("--cache-size: %w", err)
	}
	o.cache, err = store.OpenDiskCache(o.cacheDir, quota, logf, o.metrics)
	if err != nil {
		return nil, fmt.Errorf("--cache: %w", err)
	}
	return o.cache.Store(set), nil
}

// openListed opens the store at first for the verbs that list a store's images (ls,
// sync): the store itself when it is the only source and can be listed (a directory or a
// bucket, whose index files are the truth), else the mirror set over it and the --mirror
// sources (openStore), read like a store over HTTP: through the catalogue pack publishes.
func (o *sourceOptions) openListed(ctx context.Context, first string, httpOpt store.HTTPOptions) (store.Store, error) {
	if len(o.mirrors) == 0 && !isHTTP(first) { // a directory or a bucket
		return openReadStore(ctx, first, httpOpt)
	}
	return o.openStore(ctx, first, httpOpt)
}

func isHTTP(loc string) bool {
	return strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://")
}

// anyUp says whether a mirror of the set answered its last probe or request.
func anyUp(set *store.MirrorSet) bool {
	for _, st := range set.Status() {
		if st.State == "up" {
			return true
		}
	}
	return false
}

// heldLines keeps log lines until release says whether they are worth printing; from then
// on lines go straight to stderr.
type heldLines struct {
	mu       sync.Mutex
	released bool
	lines    []string
}

func (h *heldLines) logf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		logf(format, args...)
		return
	}
	h.lines = append(h.lines, fmt.Sprintf(format, args...))
}

func (h *heldLines) release(print bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if print {
		for _, l := range h.lines {
			logf("%s", l)
		}
	}
	h.lines, h.released = nil, true
}

// openSeeds scans the --seed paths for the chunks of ix (seeds.go in internal/seed), once,
// before any read.
func (o *sourceOptions) openSeeds(ctx context.Context, ix *index.Index) error {
	if len(o.seedPaths) == 0 {
		return nil
	}
	s, err := seed.Open(ctx, o.seedPaths, ix, seed.Options{Encode: o.cache != nil, Log: logf})
	if err != nil {
		return fmt.Errorf("--seed: %w", err)
	}
	o.seeds = s
	return nil
}

// fetcher returns the verified chunk source openStore built, in internal/source's
// order: cache -> seeds -> mirror set.
func (o *sourceOptions) fetcher() store.Fetcher {
	return o.chunks().Chunks()
}

// chunks are the sources opened so far, for internal/source to compose.
func (o *sourceOptions) chunks() source.Sources {
	return source.Sources{Set: o.set, Cache: o.cache, Seeds: o.seeds}
}

// close stops the mirror set's prober and releases the cache.
func (o *sourceOptions) close() {
	if o.set != nil {
		o.set.Close()
	}
	if o.cache != nil {
		o.cache.Close()
	}
	if o.seeds != nil {
		o.seeds.Close()
	}
}
