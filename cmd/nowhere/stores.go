package main

import (
	"context"
	"errors"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// s3Endpoint is the global --s3-endpoint flag: where s3:// stores live when not on AWS.
var s3Endpoint string

// openS3 opens an s3://BUCKET/PREFIX store; objects written get the Cache-Control that
// nowhere serve would send, so the bucket can be served over HTTP as it is. What the
// service turns out not to support (conditional writes) is said in one warning line.
func openS3(loc string) (*store.S3, error) {
	return store.NewS3(loc, s3Options())
}

// s3Options are the options of every s3:// store the CLI opens.
func s3Options() store.S3Options {
	return store.S3Options{
		Endpoint: s3Endpoint, CacheControl: server.CacheControl,
		Warn: func(msg string) { logf("warning: %s", msg) },
	}
}

// openReadStore opens a store to read: an http(s) URL, s3://BUCKET/PREFIX or a directory.
func openReadStore(ctx context.Context, loc string, httpOpt store.HTTPOptions) (store.Store, error) {
	s3 := s3Options()
	return image.OpenStoreWith(strings.TrimSuffix(loc, "/"), store.OpenOptions{HTTP: httpOpt, S3: &s3})
}

// openWriteStore opens a store to write: s3://BUCKET/PREFIX or a directory (created when
// missing).
func openWriteStore(ctx context.Context, loc string) (store.Writer, error) {
	if store.IsS3(loc) {
		return openS3(strings.TrimSuffix(loc, "/"))
	}
	return store.CreateDir(loc)
}

// storeLock is a store's lock held by this command.
type storeLock struct {
	ctx    context.Context // the command's context, cancelled if the lock is lost
	unlock func()
	held   func() error // an error once the lock is lost (only an S3 lock can be)
}

// explain turns the cancellation a lost lock caused into the reason.
func (l *storeLock) explain(err error) error {
	if herr := l.held(); herr != nil && errors.Is(err, context.Canceled) {
		return herr
	}
	return err
}

// lockStore takes a store's lock: shared for writers that add chunks before an index
// refers to them (pack, sync), exclusive for gc, which must not delete such a chunk in
// between. Stores with a lock implement store.Locker (a directory's flock, an S3
// store's marker objects), found through decorators; others (none writable today)
// have none, and the command runs unlocked.
func lockStore(ctx context.Context, w store.Writer, loc string, exclusive bool) (*storeLock, error) {
	wait := func() { logf("waiting for the gc of %s to finish", loc) }
	if exclusive {
		wait = func() { logf("waiting for the pack or sync writing to %s to finish", loc) }
	}
	lk, ok := store.FindLocker(w)
	if !ok {
		return &storeLock{ctx: ctx, unlock: func() {}, held: func() error { return nil }}, nil
	}
	l, lctx, err := lk.LockStore(ctx, exclusive, wait)
	if err != nil {
		return nil, err // names the store
	}
	return &storeLock{ctx: lctx, unlock: l.Unlock, held: l.Held}, nil
}
