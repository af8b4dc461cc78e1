package rootd

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// sources is where the root's bytes come from: the mirror set (the image's store, the
// nowhere.mirror= stores and the mirrors the store lists) and the disk cache when there
// is one; internal/source composes the chunk path over them (open, serve.go).
type sources struct {
	http  store.HTTPOptions
	set   *answered
	cache *store.DiskCache // nil: none
	store store.Store      // metadata files (through the cache's copies when there is one)
}

// openSources builds the mirror set over the image's store and the mirrors, and the
// disk cache in front of it. A chunk read never gives up: with every mirror down it
// waits, logging every few seconds, until one comes back (a root filesystem cannot
// return an error and go on). A mirror that serves a corrupt chunk is demoted and the
// read carries on from the others; the set logs each demotion with the mirror's URL.
// Both record into m (nil: nothing).
func openSources(storeURL string, spec Spec, m store.Observer, log *bootlog.Log) (*sources, error) {
	client, err := NewHTTPClient(spec.DNS, spec.Proxy)
	if err != nil {
		return nil, err
	}
	httpOpt := store.HTTPOptions{Client: client}
	ctx, cancel := context.WithTimeout(context.Background(), store.StartupProbe)
	defer cancel()
	set, err := store.NewMirrors(ctx, append([]string{storeURL}, spec.Mirrors...), httpOpt,
		false, // the mirror list is learnt once a mirror has answered (see learn)
		store.MirrorOptions{Wait: store.Policy{Timeout: 0, Log: log.Printf, Failures: store.NewFailures(log.Printf, 5*time.Second)}, Log: log.Printf, Metrics: m})
	if err != nil {
		return nil, err
	}
	src := &sources{http: httpOpt, set: &answered{MirrorSet: set}}
	src.store = src.set
	if spec.CacheDir != "" {
		c, err := store.OpenDiskCache(spec.CacheDir, spec.CacheQuota, log.Printf, m)
		if err != nil {
			log.Printf("cache %s: %v: going on without it", spec.CacheDir, err)
		} else {
			src.cache = c
			// The cache keeps only the pointer and index the boot accepted (keep): a
			// refused one must not displace the copy an offline boot falls back to.
			src.store = c.FallbackStore(src.set)
		}
	}
	return src, nil
}

// keep puts the files an accepted index was loaded from (its latest pointer and the index)
// on the cache disk, for a boot that finds no mirror. A failure only costs that.
func (s *sources) keep(files map[string][]byte, log *bootlog.Log) {
	if s.cache == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), store.StartupProbe)
	defer cancel()
	for name, b := range files {
		if !strings.HasPrefix(name, "images/") {
			continue
		}
		if err := s.cache.KeepFile(ctx, name, b); err != nil {
			log.Printf("cache: cannot keep %s: %v", name, err)
		}
	}
}

// learn adds the mirrors the store's mirror list names, once: called when the index came
// in, so a mirror answers.
func (s *sources) learn(log *bootlog.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), store.StartupProbe)
	defer cancel()
	if n := s.set.Learn(ctx, s.http); n > 0 {
		log.Printf("learnt %d mirrors from the store's mirror list: now %s", n, s.set)
	}
}

// servedBy names where the index came from: the mirror that served it, or the cache.
func (s *sources) servedBy() string {
	if from := s.set.last(); from != "" {
		return from
	}
	if s.cache != nil {
		return "the cache " + s.cache.Dir().String()
	}
	return s.set.String()
}

// answered is the mirror set, remembering which mirror served the last metadata file.
type answered struct {
	*store.MirrorSet
	mu   sync.Mutex
	from string
}

func (a *answered) File(ctx context.Context, name string, max int64) ([]byte, error) {
	b, from, err := a.MirrorSet.FileFrom(ctx, name, max)
	a.mu.Lock()
	a.from = from // "" on failure: a copy from the cache is not the mirror's
	a.mu.Unlock()
	return b, err
}

func (a *answered) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.from
}

// NewHTTPClient returns the client for the mirrors. Host names are resolved with the name
// servers the network configuration gave, asked directly: the daemon must not read
// /etc/resolv.conf or /etc/hosts, which are gone from its root after switch_root (and the
// root it serves is never its to read). proxy, when set, carries every request
// (nowhere.proxy=); otherwise HTTP_PROXY, HTTPS_PROXY and NO_PROXY from the environment do.
func NewHTTPClient(dns []string, proxy string) (*http.Client, error) {
	t := store.NewTransport()
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if len(dns) > 0 {
		var next atomic.Uint32
		d.Resolver = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				server := dns[int(next.Add(1))%len(dns)]
				return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, net.JoinHostPort(server, "53"))
			},
		}
	}
	t.DialContext = d.DialContext
	if proxy != "" {
		u, err := url.Parse(proxy)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("proxy %q: want http://HOST:PORT", proxy)
		}
		t.Proxy = http.ProxyURL(u)
	}
	return &http.Client{Transport: t}, nil
}
