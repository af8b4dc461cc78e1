package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// openedImage is an image ready to read: where it is, its index and the store.
type openedImage struct {
	loc   image.Location
	store store.Store
	index *index.Index
	file  []byte
	// verifier is what accepted the index.
	verifier *trust.Verifier
}

// openPolicy retries opening briefly: a wrong URL or a dead server should fail in seconds
// with a clear message, not hang.
var openPolicy = store.Policy{Timeout: 5 * time.Second}

// openImageSource resolves SOURCE (STORE/images/NAME[/VERSION]) and loads its index,
// verified under the trust options (cacheDir, when set, keeps the rollback state).
func openImageSource(ctx context.Context, src string, t *trustOptions, cacheDir string) (*openedImage, error) {
	loc, err := image.ParseLocation(src)
	if err != nil {
		return nil, err
	}
	v, err := t.verifier(cacheDir)
	if err != nil {
		return nil, err
	}
	opt, err := t.storeOptions()
	if err != nil {
		return nil, err
	}
	s, err := image.OpenStoreWith(loc.Store, opt)
	if err != nil {
		return nil, err
	}
	ix, file, err := image.LoadVerified(ctx, s, loc, openPolicy, v)
	if err != nil {
		return nil, err
	}
	return &openedImage{loc: loc, store: s, index: ix, file: file, verifier: v}, nil
}

// fetcher builds the verified, retrying (and optionally disk-cached) chunk source.
func (o *openedImage) fetcher(timeout time.Duration, cacheDir string) (store.Fetcher, error) {
	f := store.Retry(store.Verify(o.store), store.Policy{Timeout: timeout, Log: logf})
	if cacheDir != "" {
		d, err := store.CreateDir(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("--cache: %w", err)
		}
		f = store.Cache(f, d, logf)
	}
	return f, nil
}
