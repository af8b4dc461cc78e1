package source

import (
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/profile"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Read configures the layers above the chunk sources.
type Read struct {
	// Parallel bounds the fetches in flight (store.Limit: mount --parallel,
	// nowhere.parallel=).
	Parallel int
	// Prefetch is how many of the boot profile's chunks are fetched at a time; 0, or an
	// index without a profile, means no prefetcher.
	Prefetch int
	// Reader are the image reader's options. Its CacheBytes is also the prefetcher's
	// budget: what it brings early must fit where the reads will look for it.
	Reader image.Options
}

// Stack is an image's read stack over its sources, outermost first.
type Stack struct {
	// Content is what a mount serves: the reader, its first reads noted by Recorder.
	Content  *profile.Recording
	Recorder *profile.Recorder
	Reader   *image.Reader
	// Prefetcher is nil without one; the caller starts it (Start) when its reads may
	// begin, and closes it.
	Prefetcher *profile.Prefetcher
}

// Build composes recording -> image reader -> prefetcher -> limit over chunks (the
// sources, Sources.Chunks). The limit is below the prefetcher so that prefetches and
// reads share one bound on what the mirrors are asked at once.
func Build(ix *index.Index, chunks store.Fetcher, r Read) *Stack {
	f := store.Limit(chunks, r.Parallel)
	s := &Stack{Recorder: profile.NewRecorder(ix)}
	if q := profile.Queue(ix); len(q) > 0 && r.Prefetch > 0 {
		s.Prefetcher = profile.NewPrefetcher(f, q, profile.Options{Parallel: r.Prefetch, Budget: r.Reader.CacheBytes})
		f = s.Prefetcher
	}
	s.Reader = image.NewReader(ix, f, r.Reader)
	s.Content = profile.Record(s.Reader, s.Recorder)
	return s
}
