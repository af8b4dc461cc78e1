package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// S3LockDir is where the markers of an S3 store's lock live.
const S3LockDir = ".nowhere-lock/"

// DefaultS3LockTTL is how long a lock marker stays valid without being rewritten.
const DefaultS3LockTTL = 2 * time.Minute

// S3Lock is the lock of an S3 store: what Dir.Lock is to a directory, for object storage,
// which has no flock. Writers (pack, sync) hold it shared, gc exclusive.
//
// Each holder writes a marker object under .nowhere-lock/ (writer-RANDOM or gc-RANDOM),
// then lists the markers. A writer that sees a gc's marker removes its own and waits; a gc
// that sees a writer's keeps its own (so no new writer starts) and waits for it to go.
// Since both write before they list, and S3 lists what was written before (the strong
// read-after-write consistency of AWS S3 since 2020, MinIO, Ceph RGW, versitygw), a
// writer and a gc can never both think they hold the lock: whichever lists second sees
// the other's marker. Two gcs: the one with the greater name steps back.
//
// A holder rewrites its marker every TTL/6; a marker not rewritten for the TTL belongs to
// a process that died or lost the service, and is ignored (its age is measured on the
// service's clock: against the LastModified of the marker just written). A holder that
// could not rewrite its marker for TTL/2 (a network outage, a suspended machine) no
// longer holds the lock: Held says so, and its context is cancelled.
type S3Lock struct {
	s      *S3
	name   string
	ttl    time.Duration
	body   []byte
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}

	mu   sync.Mutex
	beat time.Time // when the last successful rewrite of the marker began
	lost error     // set once the lock is lost
}

type s3Marker struct {
	name string
	mod  time.Time
}

// Lock takes the store's lock: shared for writers, exclusive for gc. It waits while a
// holder of the other kind (or, for gc, another gc) is there; wait is told once when it
// has to. The returned context is ctx, cancelled when the lock is lost; Unlock releases
// the lock.
func (s *S3) Lock(ctx context.Context, exclusive bool, wait func()) (*S3Lock, context.Context, error) {
	kind := "writer-"
	if exclusive {
		kind = "gc-"
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	host, _ := os.Hostname()
	l := &S3Lock{
		s: s, name: S3LockDir + kind + hex.EncodeToString(rnd[:]), ttl: s.opt.LockTTL,
		body: fmt.Appendf(nil, "%sheld by pid %d on %s since %s\n", kind, os.Getpid(), host, time.Now().UTC().Format(time.RFC3339)),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if l.ttl <= 0 {
		l.ttl = DefaultS3LockTTL
	}
	told := false
	for {
		start := time.Now()
		if err := l.write(ctx); err != nil {
			l.remove() // in case an earlier round's marker is there
			return nil, nil, err
		}
		blocked, keep, stale, err := l.others(ctx, exclusive)
		if err != nil {
			l.remove()
			return nil, nil, err
		}
		if !blocked {
			l.beat = start
			if exclusive { // markers of processes that are gone: tidy up, best effort
				for _, name := range stale {
					_ = l.s.RemoveFile(ctx, name)
				}
			}
			break
		}
		if !keep {
			l.remove()
		}
		if !told && wait != nil {
			wait()
			told = true
		}
		select {
		case <-time.After(l.poll()):
		case <-ctx.Done():
			l.remove()
			return nil, nil, ctx.Err()
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	go l.heartbeat()
	return l, lctx, nil
}

// LockStore is Lock as a Locker.
func (s *S3) LockStore(ctx context.Context, exclusive bool, wait func()) (HeldLock, context.Context, error) {
	l, lctx, err := s.Lock(ctx, exclusive, wait)
	if err != nil {
		return nil, nil, err // not a nil *S3Lock in a non-nil HeldLock
	}
	return l, lctx, nil
}

func (l *S3Lock) poll() time.Duration { return min(2*time.Second, l.ttl/6) }

func (l *S3Lock) write(ctx context.Context) error {
	if err := l.s.put(ctx, l.name, l.body); err != nil {
		return fmt.Errorf("taking the lock: %w", err)
	}
	return nil
}

// remove deletes the marker, even when the context that took the lock is done.
func (l *S3Lock) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = l.s.RemoveFile(ctx, l.name)
}

// others lists the markers and says whether another holder blocks this one, whether this
// one keeps its marker meanwhile (a gc waiting for writers) or steps back, and which
// markers are stale.
func (l *S3Lock) others(ctx context.Context, exclusive bool) (blocked, keep bool, stale []string, err error) {
	var markers []s3Marker
	err = l.s.list(ctx, S3LockDir, func(name string, _ int64, mod time.Time) error {
		markers = append(markers, s3Marker{name, mod})
		return nil
	})
	if err != nil {
		return false, false, nil, fmt.Errorf("taking the lock: %w", err)
	}
	var now time.Time // the service's clock, from the marker just written
	for _, m := range markers {
		if m.name == l.name {
			now = m.mod
		}
	}
	if now.IsZero() {
		return false, false, nil, fmt.Errorf("taking the lock: the listing of %s/%s does not show the marker just written there: "+
			"this service does not list what was written before, so writers and gc cannot exclude each other", l.s, S3LockDir)
	}
	keep = true
	for _, m := range markers {
		if m.name == l.name {
			continue
		}
		if now.Sub(m.mod) > l.ttl { // left by a process that is gone
			stale = append(stale, m.name)
			continue
		}
		other := strings.TrimPrefix(m.name, S3LockDir)
		switch {
		case !exclusive && strings.HasPrefix(other, "gc-"):
			blocked, keep = true, false
		case exclusive && strings.HasPrefix(other, "writer-"):
			blocked = true
		case exclusive && strings.HasPrefix(other, "gc-"):
			blocked = true
			if m.name < l.name {
				keep = false
			}
		}
	}
	return blocked, keep, stale, nil
}

// heartbeat rewrites the marker until Unlock or until the lock is lost, and then cancels
// the lock's context.
func (l *S3Lock) heartbeat() {
	defer close(l.done)
	tick := time.NewTicker(l.ttl / 6)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		if l.Held() != nil { // e.g. the machine slept: others may be past this lock now
			l.cancel()
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/6)
		err := l.s.put(ctx, l.name, l.body)
		cancel()
		if err == nil {
			l.mu.Lock()
			if l.lost == nil {
				l.beat = start
			}
			l.mu.Unlock()
		}
	}
}

// Held reports an error once the lock is lost: its marker was not rewritten for half the
// TTL, and others may soon take it for a dead process's. A lost lock stays lost. Both
// clocks are read: the monotonic one stops while the machine is suspended, the wall
// clock does not.
func (l *S3Lock) Held() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		now := time.Now()
		if now.Sub(l.beat) > l.ttl/2 || now.Round(0).Sub(l.beat.Round(0)) > l.ttl/2 {
			l.lost = fmt.Errorf("lost the lock of %s: its marker %s was last rewritten %s ago, and others may have taken the lock since",
				l.s, l.name, now.Round(0).Sub(l.beat.Round(0)).Round(time.Second))
		}
	}
	return l.lost
}

// Unlock releases the lock: the heartbeat stops and the marker goes.
func (l *S3Lock) Unlock() {
	close(l.stop)
	<-l.done
	l.cancel()
	l.remove()
}
