package store

import (
	"context"
	"sync"
)

// OpenMirror opens one source of a store: an http(s) base URL (with the HTTP options:
// client, deadlines) or a local directory.
// It is Open without s3: a mirror is read like a web server.
func OpenMirror(base string, httpOpt HTTPOptions) (Store, error) {
	return Open(context.Background(), base, OpenOptions{HTTP: httpOpt})
}

// NewMirrors is the whole mirror machinery from a list of base URLs (or directories),
// for callers without the CLI (the boot daemon, with nowhere.mirror= from the kernel
// command line): it opens each, probes them all at once (bounded by ctx), and, unless
// learn is false, adds the mirrors listed in the first answering store's mirror list.
func NewMirrors(ctx context.Context, bases []string, httpOpt HTTPOptions, learn bool, opt MirrorOptions) (*MirrorSet, error) {
	var stores []Store
	for _, b := range bases {
		s, err := OpenMirror(b, httpOpt)
		if err != nil {
			return nil, err
		}
		stores = append(stores, s)
	}
	set, err := NewMirrorSet(stores, opt)
	if err != nil {
		return nil, err
	}
	set.Probe(ctx)
	if learn {
		set.Learn(ctx, httpOpt)
	}
	return set, nil
}

// Learn fetches the store's mirror list (MirrorListPath) and adds the mirrors it names.
// A missing list is normal; a broken one is logged and ignored: the set works on with
// the mirrors it has. It returns how many mirrors were added.
func (s *MirrorSet) Learn(ctx context.Context, httpOpt HTTPOptions) int {
	b, from, err := s.FileFrom(ctx, MirrorListPath, MaxMirrorList)
	if err != nil {
		// Missing is normal, and an unreachable store shows up in the requests that
		// follow; only a list that is there and broken is worth a line.
		return 0
	}
	urls, err := ParseMirrorList(b)
	if err != nil {
		s.opt.Log("%s/%s: %v (list ignored)", from, MirrorListPath, err) // which mirror served it
		return 0
	}
	var stores []Store
	for _, u := range urls {
		st, err := NewHTTPWith(u, httpOpt)
		if err != nil {
			continue // ParseMirrorList only returns URLs NewHTTP accepts
		}
		stores = append(stores, st)
	}
	added := s.add(stores...)
	var wg sync.WaitGroup
	for _, m := range added {
		wg.Add(1)
		go func() { defer wg.Done(); s.probe(ctx, m) }()
	}
	wg.Wait()
	return len(added)
}
