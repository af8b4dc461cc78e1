package main

import (
	"context"
	"runtime"
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

// openImageSource resolves SOURCE (STORE/images/NAME[/VERSION]) and loads its index
// through the sources so describes (mirrors, cache; see sources.go), verified under the
// trust options (the rollback state lives in the cache directory when there is one).
func openImageSource(ctx context.Context, src string, so *sourceOptions, t *trustOptions) (*openedImage, error) {
	loc, err := image.ParseLocation(src)
	if err != nil {
		return nil, err
	}
	loc.Arch = runtime.GOARCH // of a multi-architecture image, this machine's version
	v, err := t.verifier(so.cacheDir)
	if err != nil {
		return nil, err
	}
	opt, err := t.storeOptions()
	if err != nil {
		return nil, err
	}
	s, err := so.openStore(ctx, loc.Store, opt)
	if err != nil {
		return nil, err
	}
	via := s
	if so.indexVia != nil {
		if via, err = so.indexVia(s, loc); err != nil {
			return nil, err
		}
	}
	ix, file, err := image.LoadVerified(ctx, via, loc, openPolicy, v)
	if err != nil {
		return nil, err
	}
	return &openedImage{loc: loc, store: s, index: ix, file: file, verifier: v}, nil
}
