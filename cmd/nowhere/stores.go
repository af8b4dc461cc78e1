package main

import (
	"context"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// openReadStore opens a store to read: an http(s) URL or a directory.
func openReadStore(ctx context.Context, loc string, httpOpt store.HTTPOptions) (store.Store, error) {
	return image.OpenStoreWith(strings.TrimSuffix(loc, "/"), httpOpt)
}

// openWriteStore opens a store to write: a directory (created when missing).
func openWriteStore(ctx context.Context, loc string) (store.Writer, error) {
	return store.CreateDir(loc)
}
