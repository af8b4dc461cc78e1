package store

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// DiskCache is a local chunk store in front of the mirrors, bounded by a quota. It
// evicts the least recently used chunks, and keeps each chunk's last use as the file's
// modification time, so the order survives restarts without a journal to corrupt. It
// keeps copies of the index files it passes on, so an image it has read opens and reads
// with every mirror gone. Chunks are verified when read back: a corrupt one is dropped
// and fetched again.
//
// Several processes may share a cache directory; each keeps its own account of the
// files and tolerates files the others removed (a miss) or added (found on use).
type DiskCache struct {
	dir     *Dir
	quota   int64 // bytes of chunk files; 0: unbounded
	log     func(string, ...any)
	metrics Observer

	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recently used first
	items map[chunk.ID]*list.Element
	used  int64
}

type cacheEntry struct {
	id   chunk.ID
	size int64
	used time.Time
}

// maxChunkFile is the largest a chunk file can be: the biggest chunk, compressed at worst.
var maxChunkFile = int64(chunk.MaxStored(chunk.MaxSize))

// OpenDiskCache opens (creating it) the cache in path, reading what it holds and when
// each chunk was last used, and evicts down to quota (0: unbounded).
func OpenDiskCache(path string, quota int64, log func(string, ...any), m Observer) (*DiskCache, error) {
	if quota < 0 {
		return nil, fmt.Errorf("cache %s: negative quota %d", path, quota)
	}
	d, err := CreateDir(path)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = func(string, ...any) {}
	}
	c := &DiskCache{dir: d, quota: quota, log: log, metrics: observer(m), lru: list.New(), items: map[chunk.ID]*list.Element{}}
	var entries []*cacheEntry
	var bogus []string // files whose size no chunk file can have
	err = fs.WalkDir(d.root.FS(), "chunks", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == "chunks" {
				return fs.SkipAll
			}
			return err
		}
		if !e.Type().IsRegular() || !strings.HasSuffix(p, ".cacnk") {
			return nil
		}
		id, perr := chunk.ParseID(strings.TrimSuffix(e.Name(), ".cacnk"))
		if perr != nil || ChunkPath(id) != p {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile by another user of the cache
			}
			return err
		}
		if info.Size() <= 0 || info.Size() > maxChunkFile {
			// One such file (a sparse file of a huge apparent size) would count as the
			// whole quota and evict every real chunk, silently.
			bogus = append(bogus, p)
			return nil
		}
		entries = append(entries, &cacheEntry{id: id, size: info.Size(), used: info.ModTime()})
		return nil
	})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
	for _, p := range bogus {
		_ = d.root.Remove(p)
	}
	if len(bogus) > 0 {
		log("cache %s: removed %d files whose size no chunk file can have (empty, or above %d bytes), e.g. %s", path, len(bogus), int64(maxChunkFile), bogus[0])
	}
	slices.SortFunc(entries, func(a, b *cacheEntry) int { return b.used.Compare(a.used) })
	for _, e := range entries {
		c.items[e.id] = c.lru.PushBack(e)
		c.used += e.size
	}
	c.mu.Lock()
	c.overQuota()
	c.mu.Unlock()
	return c, nil
}

// Close releases the directory.
func (c *DiskCache) Close() error { return c.dir.Close() }

// Dir returns the cache's directory store.
func (c *DiskCache) Dir() *Dir { return c.dir }

// Quota returns the quota in bytes (0: unbounded).
func (c *DiskCache) Quota() int64 { return c.quota }

// overQuota evicts down to the quota, if there is one, and updates the size metric.
// c.mu must be held.
func (c *DiskCache) overQuota() {
	if c.quota > 0 {
		c.evict(c.quota)
		return
	}
	c.metrics.CacheSize(c.used, 0)
}

// evict removes least recently used chunks until at most target bytes remain. It
// returns how many chunks and bytes went. c.mu must be held.
func (c *DiskCache) evict(target int64) (int, int64) {
	n, freed := 0, int64(0)
	for c.used > target && c.lru.Len() > 0 {
		e := c.lru.Remove(c.lru.Back()).(*cacheEntry)
		delete(c.items, e.id)
		c.used -= e.size
		if err := c.dir.RemoveChunk(context.Background(), e.id); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log("cache %s: cannot evict %s: %v", c.dir, e.id, err)
		}
		n++
		freed += e.size
	}
	c.metrics.CacheSize(c.used, n)
	return n, freed
}

// get returns the chunk when the cache holds a good copy, marking it used.
func (c *DiskCache) get(ctx context.Context, ref chunk.Ref) (Fetched, bool) {
	cached := ref
	cached.Stored = 0 // the cache wrote the file itself; its size need not match the index
	raw, err := c.dir.Chunk(ctx, cached)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			c.log("cache %s: %v", c.dir, err)
		}
		c.forget(ref.ID)
		return Fetched{}, false
	}
	plain, err := chunk.Decode(nil, ref.ID, int(ref.Len), raw)
	if err != nil {
		c.log("cache %s: dropping corrupt chunk %s: %v", c.dir, ref.ID, err)
		_ = c.dir.RemoveChunk(ctx, ref.ID)
		c.forget(ref.ID)
		return Fetched{}, false
	}
	now := time.Now()
	if err := c.dir.root.Chtimes(ChunkPath(ref.ID), now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log("cache %s: cannot mark %s used: %v", c.dir, ref.ID, err)
	}
	c.mu.Lock()
	if el, ok := c.items[ref.ID]; ok {
		el.Value.(*cacheEntry).used = now
		c.lru.MoveToFront(el)
	} else { // written by another process sharing the cache
		c.items[ref.ID] = c.lru.PushFront(&cacheEntry{id: ref.ID, size: int64(len(raw)), used: now})
		c.used += int64(len(raw))
		c.overQuota()
	}
	c.mu.Unlock()
	return Fetched{Raw: raw, Plain: plain}, true
}

func (c *DiskCache) forget(id chunk.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.used -= c.lru.Remove(el).(*cacheEntry).size
		delete(c.items, id)
		c.metrics.CacheSize(c.used, 0)
	}
}

// put keeps a verified chunk, evicting older ones to stay within the quota. A full
// disk must not fail reads: errors are logged.
func (c *DiskCache) put(ctx context.Context, id chunk.ID, raw []byte) {
	if c.quota > 0 && int64(len(raw)) > c.quota {
		return
	}
	wrote, err := c.dir.PutChunk(ctx, id, raw)
	if err != nil {
		c.log("cache %s: cannot keep chunk %s: %v", c.dir, id, err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[id]; ok {
		return
	}
	_ = wrote // already there (another process): account for it all the same
	c.items[id] = c.lru.PushFront(&cacheEntry{id: id, size: int64(len(raw)), used: time.Now()})
	c.used += int64(len(raw))
	c.overQuota()
}

// Fetcher returns a Fetcher that serves chunks from the cache and fetches the others
// through inner, keeping them.
func (c *DiskCache) Fetcher(inner Fetcher) Fetcher { return cachedFetcher{c, inner} }

type cachedFetcher struct {
	c     *DiskCache
	inner Fetcher
}

func (f cachedFetcher) Fetch(ctx context.Context, ref chunk.Ref) (Fetched, error) {
	if got, ok := f.c.get(ctx, ref); ok {
		f.c.metrics.CacheLookup(true)
		return got, nil
	}
	f.c.metrics.CacheLookup(false)
	got, err := f.inner.Fetch(ctx, ref)
	if err != nil {
		return got, err
	}
	f.c.put(ctx, ref.ID, got.Raw)
	return got, nil
}

// Store returns a Store whose metadata files come from inner, with a copy of each image
// file (index, latest pointer) kept in the cache and used when inner cannot be reached.
// Its chunks come through the cache (verified: by inner when it is a Fetcher, such as a
// MirrorSet, else here).
func (c *DiskCache) Store(inner Store) Store {
	f, ok := inner.(Fetcher)
	if !ok {
		f = Verify(inner)
	}
	return cachedStore{c: c, inner: inner, f: c.Fetcher(f), keep: true}
}

// FallbackStore is Store without the copying: the cache's copies of image files still
// stand in when inner cannot be reached, but what inner serves is not kept. The caller
// keeps a file with KeepFile once it has accepted it, so a file it refused (another key,
// an older version) never displaces the last good copy (the boot keeps only the pointer
// and index it verified).
func (c *DiskCache) FallbackStore(inner Store) Store {
	s := c.Store(inner).(cachedStore)
	s.keep = false
	return s
}

// KeepFile keeps a copy of an image file (images/...) for use when the mirrors cannot be
// reached, replacing the one kept before.
func (c *DiskCache) KeepFile(ctx context.Context, name string, b []byte) error {
	if !strings.HasPrefix(name, "images/") {
		return fmt.Errorf("cache %s: %s is not an image file", c.dir, name)
	}
	return c.dir.PutFile(ctx, name, b)
}

type cachedStore struct {
	c     *DiskCache
	inner Store
	f     Fetcher
	keep  bool // keep a copy of each image file inner serves
}

func (s cachedStore) String() string { return s.inner.String() }

// Unwrap returns the store the cache is in front of (FindLocker looks through it).
func (s cachedStore) Unwrap() Store { return s.inner }

func (s cachedStore) Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	got, err := s.f.Fetch(ctx, ref)
	return got.Raw, err
}

func (s cachedStore) File(ctx context.Context, name string, max int64) ([]byte, error) {
	b, err := s.inner.File(ctx, name, max)
	image := strings.HasPrefix(name, "images/")
	if err == nil {
		if image && s.keep {
			if perr := s.c.dir.PutFile(ctx, name, b); perr != nil {
				s.c.log("cache %s: cannot keep %s: %v", s.c.dir, name, perr)
			}
		}
		return b, nil
	}
	var tl *TooLargeError
	if !image || ctx.Err() != nil || errors.Is(err, ErrNotFound) || errors.As(err, &tl) {
		return nil, err // the mirrors answered: their answer stands
	}
	cached, cerr := s.c.dir.File(ctx, name, max)
	if cerr != nil {
		return nil, err
	}
	s.c.log("%s: using the cached copy: %v", name, err)
	return cached, nil
}

// CacheStats describe a cache's content.
type CacheStats struct {
	Chunks       int
	Bytes, Quota int64
	Oldest       time.Time // least recent use of a chunk still held
	Newest       time.Time
}

// Stats returns what the cache holds.
func (c *DiskCache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := CacheStats{Chunks: c.lru.Len(), Bytes: c.used, Quota: c.quota}
	if c.lru.Len() > 0 {
		st.Newest = c.lru.Front().Value.(*cacheEntry).used
		st.Oldest = c.lru.Back().Value.(*cacheEntry).used
	}
	return st
}

// Prune evicts least recently used chunks until at most target bytes remain.
func (c *DiskCache) Prune(target int64) (chunks int, freed int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evict(max(target, 0))
}

// Verify reads every cached chunk back and drops the ones that do not match their name.
// It returns how many were dropped.
func (c *DiskCache) Verify(ctx context.Context) (int, error) {
	c.mu.Lock()
	var ids []chunk.ID
	for el := c.lru.Front(); el != nil; el = el.Next() {
		ids = append(ids, el.Value.(*cacheEntry).id)
	}
	c.mu.Unlock()
	bad := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return bad, err
		}
		raw, err := c.dir.Chunk(ctx, chunk.Ref{ID: id})
		if errors.Is(err, ErrNotFound) {
			c.forget(id)
			continue
		}
		if err == nil {
			_, err = chunk.DecodeUnknown(id, raw)
		}
		if err != nil {
			c.log("cache %s: dropping %s: %v", c.dir, id, err)
			_ = c.dir.RemoveChunk(ctx, id)
			c.forget(id)
			bad++
		}
	}
	return bad, nil
}
