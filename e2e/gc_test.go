package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/store"
)

// TestGCWithConcurrentPack proves that gc never removes a chunk a pack running at the
// same time needs. Deterministically first: the test holds the store's lock the way a
// pack does (shared, from its first chunk to its last pointer) and starts gc, which must
// say it waits and remove nothing; meanwhile a real pack publishes an old image again,
// reusing exactly the chunks gc would have removed. Once the lock is released, gc must
// finish, keep everything the new latest version references and remove what only the
// dropped versions used. The other way round, a pack started while the test holds the
// lock as gc does waits and writes nothing. Then real packs and gcs race for a few
// rounds, the store verified and the image read back after each.
func TestGCWithConcurrentPack(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	randomFile(t, a, 8<<20, 1)
	randomFile(t, b, 8<<20, 2)
	pack := func(img string) result {
		return runNowhere(t, "pack", img, "--store", st, "--name", "os", "--progress", "never", "--parallel", "1")
	}
	for _, img := range []string{a, b} {
		if r := pack(img); r.code != 0 {
			t.Fatal(r.stderr)
		}
	}
	aOnly := sub(indexChunks(t, st, "os", 1), indexChunks(t, st, "os", 2))
	bOnly := sub(indexChunks(t, st, "os", 2), indexChunks(t, st, "os", 1))
	if len(aOnly) == 0 || len(bOnly) == 0 {
		t.Fatal("the two random images share all their chunks: the test proves nothing")
	}

	// Dry run: says what would go (os@1 and exactly the chunks only it uses), removes nothing.
	stored := chunkSet(t, st)
	dry := mustNowhere(t, "gc", st, "--keep", "1", "--keep-within", "0", "--grace", "0", "--dry-run", "--list").stdout
	if !strings.Contains(dry, "versions: would remove 1 (os@1)") {
		t.Fatalf("gc --dry-run does not name os@1:\n%s", dry)
	}
	var listed []string
	for line := range strings.Lines(dry) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "would remove chunks/"); ok {
			listed = append(listed, "chunks/"+p)
		}
	}
	if want := slices.Sorted(maps.Keys(aOnly)); !slices.Equal(slices.Sorted(slices.Values(listed)), want) {
		t.Fatalf("gc --dry-run --list lists %d chunks, want the %d only os@1 uses:\n%s", len(listed), len(want), dry)
	}
	if !maps.Equal(chunkSet(t, st), stored) || !exists(filepath.Join(st, "images/os/1.index")) {
		t.Fatal("gc --dry-run removed something")
	}

	// The lock a pack holds, taken by the test.
	d, err := store.OpenDir(st)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	unlock, err := d.Lock(false, nil)
	if err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	gc := startNowhere(t, "gc", st, "--keep", "1", "--keep-within", "0", "--grace", "0")
	if !waitFor(time.Minute, func() bool { return strings.Contains(gc.stderr(), "waiting for the pack or sync writing to "+st) }) {
		t.Fatalf("gc did not say it waits for the lock: it %s\nstdout: %s\nstderr: %s", gc.state(), gc.stdout(), gc.stderr())
	}
	// While gc waits, a real pack publishes A again (os@3): it takes the same lock, shared,
	// and reuses exactly the chunks that gc, had it not waited, would remove.
	if r := pack(a); r.code != 0 {
		t.Fatalf("pack while gc waits: %s", r.stderr)
	}
	if gc.exited() {
		t.Fatalf("gc finished while the lock was held\nstdout: %s\nstderr: %s", gc.stdout(), gc.stderr())
	}
	for p := range stored {
		if !exists(filepath.Join(st, p)) {
			t.Errorf("gc removed %s while the lock was held", p)
		}
	}
	for _, f := range []string{"1.index", "2.index", "3.index"} {
		if !exists(filepath.Join(st, "images/os", f)) {
			t.Errorf("images/os/%s is gone while the lock was held", f)
		}
	}
	unlock()
	locked = false
	r := gc.wait(t)
	if r.code != 0 || !strings.Contains(r.stdout, "keeping 1 version (os@3)") || !strings.Contains(r.stdout, "versions: removed 2 (os@1 os@2)") {
		t.Fatalf("gc after the lock was released: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if got, want := chunkSet(t, st), indexChunks(t, st, "os", 3); !maps.Equal(got, want) {
		t.Errorf("after gc the store holds %d chunk files, want exactly the %d of os@3 (missing %d, extra %d)",
			len(got), len(want), len(sub(want, got)), len(sub(got, want)))
	}
	for p := range bOnly {
		if exists(filepath.Join(st, p)) {
			t.Errorf("gc kept %s, which only the dropped os@2 used", p)
			break
		}
	}
	verifyAndReadBack(t, st, a, "after the deterministic round")

	// The other half of the protocol: a pack waits while gc holds the lock (exclusive,
	// taken here by the test), writing no chunk and publishing nothing.
	unlock, err = d.Lock(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	locked = true
	stored = chunkSet(t, st)
	pk := startNowhere(t, "pack", b, "--store", st, "--name", "os", "--progress", "never", "--parallel", "1")
	if !waitFor(time.Minute, func() bool { return strings.Contains(pk.stderr(), "waiting for the gc of "+st) }) {
		t.Fatalf("pack did not say it waits for gc: it %s\nstderr: %s", pk.state(), pk.stderr())
	}
	if pk.exited() || !maps.Equal(chunkSet(t, st), stored) || exists(filepath.Join(st, "images/os/4.index")) {
		t.Fatalf("pack went on while gc held the lock (%s)\nstderr: %s", pk.state(), pk.stderr())
	}
	unlock()
	locked = false
	if r := pk.wait(t); r.code != 0 || !exists(filepath.Join(st, "images/os/4.index")) {
		t.Fatalf("pack after gc released the lock: exit %d\n%s", r.code, r.stderr)
	}

	// Real races, bounded: each round gc --keep 1 removes the chunks of the image that is
	// not the latest while a pack publishes that image again, reusing exactly those chunks.
	packAndGCRace(t, 4, [2]string{a, b}, pack, st, func(img string, round int) {
		verifyAndReadBack(t, st, img, "round "+itoa(round))
	})
	// In the end only the latest version and its chunks remain.
	mustNowhere(t, "gc", st, "--keep", "1", "--keep-within", "0", "--grace", "0")
	if got, want := chunkSet(t, st), indexChunks(t, st, "os", 8); !maps.Equal(got, want) {
		t.Errorf("after the last gc --keep 1: %d chunk files, want the %d of os@8", len(got), len(want))
	}
}

// verifyAndReadBack checks the whole store with nowhere verify and that the latest
// version of os extracts as img.
func verifyAndReadBack(t *testing.T, st, img, when string) {
	t.Helper()
	r := mustNowhere(t, "verify", st)
	if !strings.Contains(r.stdout, ": 0 problems") {
		t.Fatalf("%s: store damaged:\n%s", when, r.stdout)
	}
	out := filepath.Join(t.TempDir(), "out.img")
	mustNowhere(t, "extract", st+"/images/os", out, "--insecure", "--progress", "never", "--state", filepath.Join(t.TempDir(), "state"))
	if !fileEqual(t, out, img) {
		t.Fatalf("%s: the latest version does not read back as %s", when, img)
	}
}

// chunkSet returns the chunk files in a directory store (paths relative to it).
func chunkSet(t *testing.T, st string) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(st, "chunks"), func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() && strings.HasSuffix(p, ".cacnk") {
			rel, _ := filepath.Rel(st, p)
			set[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// indexChunks returns the chunk files a version references (paths relative to the store).
func indexChunks(t *testing.T, st, name string, v int) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	for _, e := range loadIndex(t, st, name, v).Entries {
		if !e.Zero {
			set[store.ChunkPath(e.ID)] = true
		}
	}
	return set
}

// sub returns what x holds and y does not.
func sub(x, y map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range x {
		if !y[k] {
			out[k] = true
		}
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// background is a nowhere command running while the test does something else.
type background struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	out    bytes.Buffer
	errb   bytes.Buffer
	err    error // from Wait, once done
}

// lockedWriter lets the test read a buffer the command is writing to.
type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// startNowhere starts nowhere with args, bounded by cmdTimeout and killed at the end of
// the test if still running.
func startNowhere(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	bg := &background{cancel: cancel, done: make(chan struct{})}
	bg.cmd = exec.CommandContext(ctx, nowhereBin, args...)
	bg.cmd.Stdout = lockedWriter{&bg.mu, &bg.out}
	bg.cmd.Stderr = lockedWriter{&bg.mu, &bg.errb}
	if err := bg.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { bg.err = bg.cmd.Wait(); close(bg.done) }()
	t.Cleanup(func() { cancel(); <-bg.done })
	return bg
}

func (bg *background) stdout() string { bg.mu.Lock(); defer bg.mu.Unlock(); return bg.out.String() }
func (bg *background) stderr() string { bg.mu.Lock(); defer bg.mu.Unlock(); return bg.errb.String() }

func (bg *background) exited() bool {
	select {
	case <-bg.done:
		return true
	default:
		return false
	}
}

func (bg *background) state() string {
	if bg.exited() {
		return "exited (" + errString(bg.err) + ")"
	}
	return "is still running"
}

func errString(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// wait waits for the command to end (within cmdTimeout of its start) and returns what it
// did.
func (bg *background) wait(t *testing.T) result {
	t.Helper()
	<-bg.done
	bg.cancel()
	r := result{stdout: bg.stdout(), stderr: bg.stderr()}
	var ee *exec.ExitError
	switch {
	case bg.err == nil:
	case errors.As(bg.err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("nowhere %s: %v", strings.Join(bg.cmd.Args[1:], " "), bg.err)
	}
	return r
}

// packAndGCRace runs rounds of a real race: pack publishes imgs[round%2] again while
// `gc STORE --keep 1 --grace 0` runs, both as processes; both must succeed, then check
// verifies the store after the round.
func packAndGCRace(t *testing.T, rounds int, imgs [2]string, pack func(img string) result, store string, check func(img string, round int)) {
	t.Helper()
	for round := range rounds {
		img := imgs[round%2]
		var wg sync.WaitGroup
		var packRes, gcRes result
		wg.Add(2)
		go func() { defer wg.Done(); packRes = pack(img) }()
		go func() {
			defer wg.Done()
			gcRes = runNowhere(t, "gc", store, "--keep", "1", "--keep-within", "0", "--grace", "0")
		}()
		wg.Wait()
		if packRes.code != 0 || gcRes.code != 0 {
			t.Fatalf("round %d: pack exit %d: %s; gc exit %d: %s", round, packRes.code, packRes.stderr, gcRes.code, gcRes.stderr)
		}
		check(img, round)
	}
}

// TestMountSurvivesDefaultGC: a machine that mounted version 1 keeps reading all of it
// after two new versions are published (sharing none of its chunks) and gc runs with its
// default policy (--keep 3 --keep-within 7d) and no grace period: version 1 was current
// within the window, so its chunks stay. Then the same gc with --keep-within 0 removes it,
// proving the window (not the grace period or --keep) kept it.
func TestMountSurvivesDefaultGC(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	var imgs []string
	for i := range 3 {
		img := filepath.Join(dir, fmt.Sprintf("v%d.img", i+1))
		randomFile(t, img, 4<<20, uint64(10+i))
		imgs = append(imgs, img)
	}
	pack := func(img string) {
		mustNowhere(t, "pack", img, "--store", st, "--name", "os", "--progress", "never", "--sign-key", secretKey)
	}
	pack(imgs[0])
	m := mountDaemon(t, st+"/images/os", "os")
	pack(imgs[1])
	pack(imgs[2])
	// --keep 1: only the default window can keep version 1 (it is not among the newest).
	out := mustNowhere(t, "gc", st, "--keep", "1", "--grace", "0").stdout
	if !strings.Contains(out, "kept only by --keep-within") || !strings.Contains(out, "os@1") {
		t.Errorf("gc with the default window does not say it keeps os@1 for it:\n%s", out)
	}
	want, _ := fileSHA256(imgs[0])
	if got, err := fileSHA256(m.file); err != nil || got != want {
		t.Fatalf("reading version 1 through the mount after gc: %v (sha256 %s, want %s)", err, got, want)
	}
	m.unmount(t)
	out = mustNowhere(t, "gc", st, "--keep", "1", "--keep-within", "0", "--grace", "0", "--sign-key", secretKey).stdout
	if !strings.Contains(out, "versions: removed 2 (os@1 os@2)") {
		t.Errorf("gc --keep-within 0 did not remove os@1 and os@2:\n%s", out)
	}
}
