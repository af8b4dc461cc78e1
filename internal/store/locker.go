package store

import "context"

// Locker is a writable store with a lock that writers adding chunks before an index
// refers to them (pack, sync) take shared, and garbage collection takes exclusive, so
// that gc never deletes such a chunk in between. Dir (a flock) and S3 (marker objects,
// S3Lock) implement it; callers find it with FindLocker rather than by switching on
// concrete types, so a decorator around either keeps the lock reachable.
type Locker interface {
	// LockStore waits for the lock, telling wait once when it has to. The context it
	// returns is ctx, cancelled if the lock is lost (only an S3 lock, whose lease must be
	// renewed, can be); the work done under the lock should use it.
	LockStore(ctx context.Context, exclusive bool, wait func()) (HeldLock, context.Context, error)
}

// HeldLock is a store lock taken by LockStore.
type HeldLock interface {
	// Unlock releases the lock.
	Unlock()
	// Held returns nil while the lock is held, and why once it is lost.
	Held() error
}

// Unwrapper is implemented by decorators around one store, so that optional interfaces
// of the store underneath (Locker) can be found through them, as net/http's
// ResponseController finds a ResponseWriter's through Unwrap.
type Unwrapper interface {
	Unwrap() Store
}

// FindLocker returns s's lock, looking through decorators (Unwrapper); ok is false when
// s has none (a read-only store).
func FindLocker(s Store) (l Locker, ok bool) {
	for s != nil {
		if l, ok := s.(Locker); ok {
			return l, true
		}
		u, ok := s.(Unwrapper)
		if !ok {
			return nil, false
		}
		s = u.Unwrap()
	}
	return nil, false
}

var (
	_ Locker    = (*Dir)(nil)
	_ Locker    = (*S3)(nil)
	_ HeldLock  = (*S3Lock)(nil)
	_ HeldLock  = dirLock(nil)
	_ Unwrapper = cachedStore{}
)
