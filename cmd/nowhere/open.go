package main

import (
	"context"
	"time"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// openedImage is an image ready to read: where it is, its index and the store.
type openedImage struct {
	loc   image.Location
	store store.Store
	index *index.Index
	file  []byte
}

// openPolicy retries opening briefly: a wrong URL or a dead server should fail in seconds
// with a clear message, not hang.
var openPolicy = store.Policy{Timeout: 5 * time.Second}

// openImageSource resolves SOURCE (STORE/images/NAME[/VERSION]) and loads its index
// through the sources so describes (mirrors, cache; see sources.go).
func openImageSource(ctx context.Context, src string, so *sourceOptions) (*openedImage, error) {
	loc, err := image.ParseLocation(src)
	if err != nil {
		return nil, err
	}
	s, err := so.openStore(ctx, loc.Store)
	if err != nil {
		return nil, err
	}
	ix, file, err := image.Load(ctx, s, loc, openPolicy)
	if err != nil {
		return nil, err
	}
	return &openedImage{loc: loc, store: s, index: ix, file: file}, nil
}
