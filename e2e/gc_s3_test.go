package e2e

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// TestGCWithConcurrentPackS3 is TestGCWithConcurrentPack on object storage (a real
// versitygw), where the store's lock is marker objects. A pack runs in the test up to its
// most fragile point, every chunk of image A in place (all reused: A is an older version
// gc --keep 1 is about to drop) and its index not yet published, and pauses there holding
// the lock as the CLI's pack does. gc must wait and remove nothing, and a second pack
// started meanwhile must wait for gc; once the paused pack publishes and lets go, gc keeps
// every chunk of the new version and removes what only the dropped versions used, then
// the second pack runs. Then real packs and gcs race for a few rounds.
func TestGCWithConcurrentPackS3(t *testing.T) {
	needRoot(t)
	s := startS3(t)
	s.useCredentials(t, true)
	dir := t.TempDir()
	bucket := "s3://" + testBucket + "/store"
	backend := filepath.Join(s.root, testBucket, "store") // versitygw's posix backend: a file per object
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	randomFile(t, a, 4<<20, 1)
	randomFile(t, b, 4<<20, 2)
	const chunking = "fixed:64K" // the same in the test's pack and the CLI's
	packCLI := func(img string) result {
		return runNowhere(t, "pack", img, "--store", bucket, "--name", "os", "--chunking", chunking, "--progress", "never")
	}
	for _, img := range []string{a, b} {
		if r := packCLI(img); r.code != 0 {
			t.Fatal(r.stderr)
		}
	}
	stored := chunkSet(t, backend)

	st, err := store.NewS3(bucket, store.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lock, lctx, err := st.Lock(ctx, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	unlocked := false
	defer func() {
		if !unlocked {
			lock.Unlock()
		}
	}()
	spec, err := chunk.ParseSpec(chunking)
	if err != nil {
		t.Fatal(err)
	}
	reached, release := make(chan struct{}), make(chan struct{})
	released := sync.OnceFunc(func() { close(release) })
	defer released()
	type packed struct {
		res *pack.Result
		err error
	}
	done := make(chan packed, 1)
	go func() {
		f, err := os.Open(a)
		if err != nil {
			done <- packed{nil, err}
			return
		}
		defer f.Close()
		res, err := pack.Run(lctx, f, st, pack.Options{Name: "os", Spec: spec, Finish: func(*index.Index) error {
			close(reached)
			<-release
			return nil
		}})
		done <- packed{res, err}
	}()
	select {
	case <-reached:
	case p := <-done:
		t.Fatalf("the test's pack ended before publishing: %v", p.err)
	case <-ctx.Done():
		t.Fatal("the test's pack did not reach the point before publishing")
	}

	gc := startNowhere(t, "gc", bucket, "--keep", "1", "--keep-within", "0", "--grace", "0")
	if !waitFor(time.Minute, func() bool { return strings.Contains(gc.stderr(), "waiting for the pack or sync writing to "+bucket) }) {
		t.Fatalf("gc did not say it waits for the pack: it %s\nstdout: %s\nstderr: %s", gc.state(), gc.stdout(), gc.stderr())
	}
	second := startNowhere(t, "pack", b, "--store", bucket, "--name", "os", "--chunking", chunking, "--progress", "never")
	if !waitFor(time.Minute, func() bool { return strings.Contains(second.stderr(), "waiting for the gc of "+bucket) }) {
		t.Fatalf("a pack started while gc waits did not wait for it: it %s\nstderr: %s", second.state(), second.stderr())
	}
	if gc.exited() || second.exited() {
		t.Fatalf("gc (%s) or the second pack (%s) went on while the test's pack held the lock", gc.state(), second.state())
	}
	if !maps.Equal(chunkSet(t, backend), stored) || !exists(filepath.Join(backend, "images/os/1.index")) || exists(filepath.Join(backend, "images/os/3.index")) {
		t.Fatal("the bucket changed while the test's pack was paused")
	}

	released()
	if p := <-done; p.err != nil {
		t.Fatalf("the test's pack: %v", p.err)
	} else if p.res.Index.Version != 3 || p.res.New != 0 {
		t.Fatalf("the paused pack published os@%d writing %d new chunks; want os@3 reusing every chunk", p.res.Index.Version, p.res.New)
	}
	lock.Unlock()
	unlocked = true
	r := gc.wait(t)
	if r.code != 0 || !strings.Contains(r.stdout, "keeping 1 version (os@3)") || !strings.Contains(r.stdout, "versions: removed 2 (os@1 os@2)") {
		t.Fatalf("gc once the pack let go: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r := second.wait(t); r.code != 0 || !strings.Contains(r.stdout, "packed os version 4") {
		t.Fatalf("the second pack after gc: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	want := indexChunks(t, backend, "os", 3)
	maps.Copy(want, indexChunks(t, backend, "os", 4))
	if got := chunkSet(t, backend); !maps.Equal(got, want) {
		t.Errorf("the bucket holds %d chunks, want exactly the %d of os@3 and os@4 (missing %d, extra %d)",
			len(got), len(want), len(sub(want, got)), len(sub(got, want)))
	}
	if ms, _ := filepath.Glob(filepath.Join(backend, store.S3LockDir, "*")); len(ms) != 0 {
		t.Errorf("lock markers left in the bucket: %v", ms)
	}
	verifyS3(t, backend, bucket, map[string]string{"3": a, "": b})

	// Real races, bounded: gc --keep 1 drops the older image's version while a pack
	// publishes that image again.
	packAndGCRace(t, 3, [2]string{a, b}, packCLI, bucket, func(img string, _ int) {
		verifyS3(t, backend, bucket, map[string]string{"": img})
	})
}

// verifyS3 checks a bucket's store: nowhere verify of the objects as the posix backend
// holds them, and each version ("" for latest) of os extracted over S3 as its image.
func verifyS3(t *testing.T, backend, bucket string, images map[string]string) {
	t.Helper()
	if r := mustNowhere(t, "verify", backend); !strings.Contains(r.stdout, ": 0 problems") {
		t.Fatalf("the bucket's store is damaged:\n%s", r.stdout)
	}
	for v, img := range images {
		src := bucket + "/images/os"
		if v != "" {
			src += "/" + v
		}
		out := filepath.Join(t.TempDir(), "out.img")
		mustNowhere(t, "extract", src, out, "--insecure", "--progress", "never", "--state", filepath.Join(t.TempDir(), "state"))
		if !fileEqual(t, out, img) {
			t.Fatalf("%s does not read back as %s", src, img)
		}
	}
}

// TestS3LockLease: the S3 lock's markers against a real versitygw, with a short TTL. A
// marker left by a dead process (not rewritten for longer than the TTL) is ignored and
// tidied away; a holder's heartbeat keeps its lock however long it holds it (a gc waits
// past the TTL); two gcs exclude each other; a holder cut off from the service (the server
// paused with SIGSTOP) loses its lock for good: Held says so and its context is cancelled.
func TestS3LockLease(t *testing.T) {
	needRoot(t)
	s := startS3(t)
	s.useCredentials(t, true)
	const ttl = 3 * time.Second
	bucket := "s3://" + testBucket + "/store"
	markers := filepath.Join(s.root, testBucket, "store", store.S3LockDir)
	open := func() *store.S3 {
		st, err := store.NewS3(bucket, store.S3Options{LockTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A dead writer's marker.
	dead := store.S3LockDir + "writer-0123456789abcdef"
	if err := open().PutFile(ctx, dead, []byte("writer-held by a process that died\n")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(markers, "writer-0123456789abcdef"), old, old); err != nil {
		t.Fatal(err)
	}
	waited := false
	g, _, err := open().Lock(ctx, true, func() { waited = true })
	if err != nil {
		t.Fatal(err)
	}
	if waited {
		t.Error("gc waited for a marker last written an hour ago")
	}
	if exists(filepath.Join(markers, "writer-0123456789abcdef")) {
		t.Error("gc left the dead writer's marker")
	}
	g.Unlock()

	// A writer holds the lock for twice the TTL; a gc waits all along.
	w, _, err := open().Lock(ctx, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	gcWaits := make(chan struct{})
	gcGot := make(chan *store.S3Lock, 1)
	go func() {
		l, _, _ := open().Lock(ctx, true, func() { close(gcWaits) })
		gcGot <- l // nil: failed
	}()
	select {
	case <-gcWaits:
	case <-time.After(time.Minute):
		t.Fatal("gc did not wait for the writer")
	}
	select {
	case <-gcGot:
		t.Fatal("gc took the lock while the writer held it: the writer's heartbeat did not keep its marker alive")
	case <-time.After(2 * ttl):
	}
	if err := w.Held(); err != nil {
		t.Fatalf("the writer, rewriting its marker all along: %v", err)
	}
	// A second gc waits for the first, which now waits for the writer.
	gc2Waits := make(chan struct{})
	gc2Got := make(chan *store.S3Lock, 1)
	go func() {
		l, _, _ := open().Lock(ctx, true, func() { close(gc2Waits) })
		gc2Got <- l // nil: failed
	}()
	select {
	case <-gc2Waits:
	case <-time.After(time.Minute):
		t.Fatal("the second gc did not wait for the first")
	}
	w.Unlock()
	var first *store.S3Lock
	select {
	case first = <-gcGot:
	case first = <-gc2Got:
	case <-time.After(time.Minute):
		t.Fatal("no gc took the lock within a minute of the writer letting go")
	}
	if first == nil {
		t.Fatal("gc failed to take the lock")
	}
	select {
	case <-gcGot:
		t.Fatal("both gcs hold the lock")
	case <-gc2Got:
		t.Fatal("both gcs hold the lock")
	case <-time.After(2 * ttl):
	}
	first.Unlock()
	var second *store.S3Lock
	select {
	case second = <-gcGot:
	case second = <-gc2Got:
	case <-time.After(time.Minute):
		t.Fatal("the second gc did not take the lock once the first let go")
	}
	if second == nil {
		t.Fatal("the second gc failed to take the lock")
	}
	second.Unlock()

	// Cut off from the service for longer than half the TTL, a holder loses its lock.
	l, lctx, err := open().Lock(ctx, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if err := s.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := sync.OnceFunc(func() { _ = s.proc.Signal(syscall.SIGCONT) })
	defer resumed()
	select {
	case <-lctx.Done():
	case <-time.After(ttl + 2*time.Second):
		t.Fatal("the lock's context is not cancelled after the service was unreachable for longer than the TTL")
	}
	resumed()
	time.Sleep(ttl / 2) // the heartbeat could rewrite the marker again by now
	if err := l.Held(); err == nil || !strings.Contains(err.Error(), "lost the lock") {
		t.Fatalf("Held after losing the lock: %v", err)
	}
}
