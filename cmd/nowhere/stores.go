package main

import (
	"context"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// s3Endpoint is the global --s3-endpoint flag: where s3:// stores live when not on AWS.
var s3Endpoint string

// openS3 opens an s3://BUCKET/PREFIX store; objects written get the Cache-Control that
// nowhere serve would send, so the bucket can be served over HTTP as it is.
func openS3(loc string) (*store.S3, error) {
	return store.NewS3(loc, store.S3Options{Endpoint: s3Endpoint, CacheControl: server.CacheControl})
}

// openReadStore opens a store to read: an http(s) URL, s3://BUCKET/PREFIX or a directory.
func openReadStore(ctx context.Context, loc string, httpOpt store.HTTPOptions) (store.Store, error) {
	loc = strings.TrimSuffix(loc, "/")
	if store.IsS3(loc) {
		return openS3(loc)
	}
	return image.OpenStoreWith(loc, httpOpt)
}

// openWriteStore opens a store to write: s3://BUCKET/PREFIX or a directory (created when
// missing).
func openWriteStore(ctx context.Context, loc string) (store.Writer, error) {
	if store.IsS3(loc) {
		return openS3(strings.TrimSuffix(loc, "/"))
	}
	return store.CreateDir(loc)
}

// lockForWriting holds a directory store's lock shared while chunks are written before
// the index that references them, so that gc (which holds it exclusive) never runs in
// between. Object stores have no such lock: gc's grace period covers them.
func lockForWriting(w store.Writer, loc string) (func(), error) {
	d, ok := w.(*store.Dir)
	if !ok {
		return func() {}, nil
	}
	return d.Lock(false, func() { logf("waiting for the gc of %s to finish", loc) })
}
