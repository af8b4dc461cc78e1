package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

func newSet(t testing.TB, opt store.MirrorOptions, stores ...store.Store) *store.MirrorSet {
	t.Helper()
	s, err := store.NewMirrorSet(stores, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMirrorSetReadSurvivesKilledMirror(t *testing.T) {
	dir, ix, data := mirrorImage(t, 12<<20, 1)
	a, b, c := startMirror(t, dir), startMirror(t, dir), startMirror(t, dir)
	var log logRecorder
	set := newSet(t, store.MirrorOptions{Log: log.logf, Metrics: newObserver()},
		a.store(t), b.store(t), c.store(t))
	set.Probe(context.Background())

	killed := false
	sum, st := readImage(t, ix, set, func(off int64) {
		if !killed && off >= ix.Size/3 {
			b.kill()
			killed = true
		}
	})
	if sum != sha256.Sum256(data) {
		t.Fatal("content read through the mirror set differs from the image")
	}
	if st.Errors != 0 {
		t.Fatalf("%d reads failed", st.Errors)
	}
	if got := statusOf(t, set, b.URL()).State; got != "down" {
		t.Errorf("killed mirror is %q, want down; log:\n%s", got, &log)
	}
	if log.find(b.URL(), "demoted") == "" {
		t.Errorf("no log line demoting %s:\n%s", b.URL(), &log)
	}
	if a.requests.Load() == 0 || c.requests.Load() == 0 {
		t.Errorf("requests not spread: a=%d b=%d c=%d", a.requests.Load(), b.requests.Load(), c.requests.Load())
	}
}

func TestMirrorSetFailsBackWhenMirrorReturns(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 2<<20, 2)
	a, b := startMirror(t, dir), startMirror(t, dir)
	var log logRecorder
	set := newSet(t, store.MirrorOptions{Log: log.logf}, a.store(t), b.store(t))
	b.kill()
	set.Probe(context.Background())
	if got := statusOf(t, set, b.URL()).State; got != "down" {
		t.Fatalf("dead mirror is %q after the probe, want down", got)
	}
	refs := refsOf(ix)
	if _, err := set.Fetch(context.Background(), refs[0]); err != nil {
		t.Fatal(err)
	}
	b.start()
	eventually(t, 30*time.Second, "restarted mirror taken back by the background probe", func() bool {
		return statusOf(t, set, b.URL()).State == "up"
	})
	if log.find(b.URL(), "is back") == "" {
		t.Errorf("no fail-back log line:\n%s", &log)
	}
	before := b.requests.Load()
	var wg sync.WaitGroup
	for _, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := set.Fetch(context.Background(), ref); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if b.requests.Load() == before {
		t.Error("mirror back up but given no requests")
	}
}

func TestMirrorSetCorruptMirrorDemotedHard(t *testing.T) {
	dir, ix, data := mirrorImage(t, 4<<20, 3)
	bad := startMirror(t, corruptCopy(t, dir))
	good := startMirror(t, dir)
	var log logRecorder
	m := newObserver()
	// The corrupt mirror comes first: it is the one the set tries first.
	set := newSet(t, store.MirrorOptions{Log: log.logf, Metrics: m}, bad.store(t), good.store(t))
	sum, st := readImage(t, ix, set, nil)
	if sum != sha256.Sum256(data) || st.Errors != 0 {
		t.Fatalf("content wrong or reads failed (%d errors)", st.Errors)
	}
	status := statusOf(t, set, bad.URL())
	if status.State != "bad" || status.Corrupt == 0 {
		t.Fatalf("corrupt mirror: state %q, %d corrupt chunks; want bad", status.State, status.Corrupt)
	}
	line := log.find(bad.URL(), "corrupt chunk", "demoted hard")
	if line == "" {
		t.Fatalf("no log line naming %s:\n%s", bad.URL(), &log)
	}
	// Hard demotion: the bad mirror got a chunk or a few (reads in flight at once), then no more.
	if n := bad.requests.Load(); n > 32 {
		t.Errorf("corrupt mirror got %d requests after being caught", n)
	}
	if got := m.HashFailures(bad.URL()); got < 1 {
		t.Errorf("hash failure metric %v", got)
	}
}

func TestMirrorSetAllDownWaitsAndResumes(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 1<<20, 4)
	a, b := startMirror(t, dir), startMirror(t, dir)
	var log logRecorder
	m := newObserver()
	set := newSet(t, store.MirrorOptions{Log: log.logf, Metrics: m,
		Wait: store.Policy{Timeout: 0, Log: log.logf, LogEvery: 200 * time.Millisecond}}, a.store(t), b.store(t))
	a.kill()
	b.kill()
	ref := refsOf(ix)[0]
	done := make(chan error, 1)
	go func() {
		f, err := set.Fetch(context.Background(), ref)
		if err == nil && chunk.Sum(f.Plain) != ref.ID {
			err = errors.New("wrong content")
		}
		done <- err
	}()
	eventually(t, 30*time.Second, "the blocked fetch logs that it is still waiting", func() bool {
		return log.find("still failing") != ""
	})
	select {
	case err := <-done:
		t.Fatalf("fetch returned while every mirror was down: %v", err)
	default:
	}
	if w := m.FetchesWaiting(); w != 1 {
		t.Errorf("waiting gauge %v, want 1", w)
	}
	b.start()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("fetch did not resume after a mirror came back")
	}
	if w := m.FetchesWaiting(); w != 0 {
		t.Errorf("waiting gauge %v after resuming, want 0", w)
	}
}

func TestMirrorSetAllDownTimeout(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 1<<20, 5)
	a := startMirror(t, dir)
	set := newSet(t, store.MirrorOptions{Wait: store.Policy{Timeout: 500 * time.Millisecond}}, a.store(t))
	a.kill()
	_, err := set.Fetch(context.Background(), refsOf(ix)[0])
	if err == nil || !strings.Contains(err.Error(), "gave up after") || !strings.Contains(err.Error(), a.URL()) {
		t.Fatalf("want a give-up error naming the mirror, got %v", err)
	}
}

func TestMirrorSetFailsOverOn404And5xx(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 1<<20, 6)
	e := startMirror(t, t.TempDir()) // an empty store: 404 for every chunk
	fivexx := startMirror(t, dir)
	fivexx.fail.Store(http.StatusServiceUnavailable)
	good := startMirror(t, dir)

	set := newSet(t, store.MirrorOptions{HedgeFraction: -1}, e.store(t), fivexx.store(t), good.store(t))
	for _, ref := range refsOf(ix)[:3] {
		f, err := set.Fetch(context.Background(), ref)
		if err != nil || chunk.Sum(f.Plain) != ref.ID {
			t.Fatalf("fetch %s: %v", ref.ID, err)
		}
	}
	for _, u := range []string{e.URL(), fivexx.URL()} {
		if st := statusOf(t, set, u); st.State != "down" || st.Failures == 0 {
			t.Errorf("%s: state %s, %d failures; want down", u, st.State, st.Failures)
		}
	}
}

func TestMirrorSetHedgesStalledRequest(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 4<<20, 7)
	// The first mirror answers at once, except for one chunk it holds for a minute; the
	// second always takes 30 ms, so the set sends every first request to the first.
	stall := startMirror(t, dir)
	steady := startMirror(t, dir)
	refs := refsOf(ix)
	stalled := store.ChunkPath(refs[len(refs)-1].ID)
	stall.delay = func(r *http.Request) time.Duration {
		if strings.HasSuffix(r.URL.Path, stalled) {
			return time.Minute
		}
		return 0
	}
	steady.delay = func(*http.Request) time.Duration { return 30 * time.Millisecond }
	m := newObserver()
	set := newSet(t, store.MirrorOptions{Metrics: m}, stall.store(t), steady.store(t))
	set.Probe(context.Background())
	// Teach the set the first mirror's usual speed, one request at a time.
	for _, ref := range refs[:len(refs)-1] {
		if _, err := set.Fetch(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	}
	hedges, wins := m.Hedges(), m.HedgeWins()
	hedged := statusOf(t, set, stall.URL()).Hedges
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	f, err := set.Fetch(ctx, refs[len(refs)-1])
	if err != nil || chunk.Sum(f.Plain) != refs[len(refs)-1].ID {
		t.Fatalf("fetch of the stalled chunk: %v", err)
	}
	if m.Hedges() != hedges+1 || m.HedgeWins() != wins+1 {
		t.Fatalf("%v hedges, %v won for the stalled chunk; want it hedged once, the hedge winning (took %s)",
			m.Hedges()-hedges, m.HedgeWins()-wins, time.Since(start))
	}
	if st := statusOf(t, set, stall.URL()); st.Hedges != hedged+1 || st.State != "up" {
		t.Errorf("stalling mirror: %d hedged, state %s; a slow answer is no failure", st.Hedges-hedged, st.State)
	}
}

func TestMirrorSetHedgeBudgetBounded(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 3<<20, 8)
	// Every request on both mirrors takes 30-60 ms: each would be hedged without a budget.
	slow := func(r *http.Request) time.Duration {
		return 30*time.Millisecond + time.Duration(len(r.URL.Path)%30)*time.Millisecond
	}
	a, b := startMirror(t, dir), startMirror(t, dir)
	a.delay, b.delay = slow, slow
	m := newObserver()
	set := newSet(t, store.MirrorOptions{Metrics: m, HedgeFraction: 0.05, HedgeMin: time.Millisecond}, a.store(t), b.store(t))
	refs := refsOf(ix)
	for _, ref := range refs {
		if _, err := set.Fetch(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	}
	hedges := m.Hedges()
	if limit := 0.05*float64(len(refs)) + 5; hedges > limit {
		t.Fatalf("%v hedges for %d requests: above the budget %v", hedges, len(refs), limit)
	}
}

func TestMirrorSetFileFailsOver(t *testing.T) {
	dir, _, _ := mirrorImage(t, 1<<20, 9)
	a, b := startMirror(t, dir), startMirror(t, dir)
	set := newSet(t, store.MirrorOptions{}, a.store(t), b.store(t))
	a.kill()
	got, from, err := set.FileFrom(context.Background(), store.LatestPath("test"), 1<<20)
	want, _ := os.ReadFile(filepath.Join(dir, store.LatestPath("test")))
	if err != nil || string(got) != string(want) {
		t.Fatalf("File with the first mirror dead: %v", err)
	}
	if bs := b.store(t).String(); from != bs {
		t.Errorf("FileFrom says %q served the file, want the live mirror %q", from, bs)
	}
	_, err = set.File(context.Background(), "images/nothere/latest", 1<<20)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing everywhere: want ErrNotFound, got %v", err)
	}
}

func TestMirrorSetLearnsMirrorList(t *testing.T) {
	dir, _, _ := mirrorImage(t, 1<<20, 10)
	b := startMirror(t, dir)
	list := "# mirrors of this store\n\n" + b.URL() + "/\nhttp://127.0.0.1:1/\n"
	if err := os.WriteFile(filepath.Join(dir, store.MirrorListPath), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startMirror(t, dir)
	set, err := store.NewMirrors(context.Background(), []string{a.URL()}, store.HTTPOptions{}, true, store.MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if set.Len() != 3 {
		t.Fatalf("%d mirrors after learning, want 3", set.Len())
	}
	if st := statusOf(t, set, b.URL()); st.State != "up" {
		t.Errorf("learnt mirror %s is %s", b.URL(), st.State)
	}
	if st := statusOf(t, set, "http://127.0.0.1:1"); st.State != "down" {
		t.Errorf("learnt dead mirror is %s", st.State)
	}

	// A broken list is refused whole and the set goes on with what it has.
	if err := os.WriteFile(filepath.Join(dir, store.MirrorListPath), []byte(b.URL()+"\nftp://x/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log logRecorder
	set2, err := store.NewMirrors(context.Background(), []string{a.URL()}, store.HTTPOptions{}, true, store.MirrorOptions{Log: log.logf})
	if err != nil {
		t.Fatal(err)
	}
	defer set2.Close()
	if set2.Len() != 1 || log.find("line 2", "only http and https") == "" {
		t.Fatalf("broken list: %d mirrors, log:\n%s", set2.Len(), &log)
	}
}

func TestMirrorSetLocalDirectoryMirror(t *testing.T) {
	dir, ix, data := mirrorImage(t, 2<<20, 11)
	a := startMirror(t, dir)
	a.kill()
	set, err := store.NewMirrors(context.Background(), []string{a.URL(), dir}, store.HTTPOptions{}, false, store.MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	sum, st := readImage(t, ix, set, nil)
	if sum != sha256.Sum256(data) || st.Errors != 0 {
		t.Fatal("reading through a directory mirror failed")
	}
}

func TestMirrorSetFailsOverOnStalledMirror(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 1<<20, 12)
	stalled, good := startMirror(t, dir), startMirror(t, dir)
	stalled.delay = func(*http.Request) time.Duration { return time.Minute }
	var log logRecorder
	set := newSet(t, store.MirrorOptions{HedgeFraction: -1, AttemptTimeout: 300 * time.Millisecond, Log: log.logf},
		stalled.store(t), good.store(t))
	ref := refsOf(ix)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := set.Fetch(ctx, ref)
	if err != nil || chunk.Sum(f.Plain) != ref.ID {
		t.Fatalf("fetch with the first mirror stalled: %v", err)
	}
	if st := statusOf(t, set, stalled.URL()); st.State != "down" || !strings.Contains(st.LastError, "no answer within") {
		t.Fatalf("stalled mirror: state %s, last error %q; want down after the attempt timeout", st.State, st.LastError)
	}
}

// TestMirrorMetricsStartAtZero: the observer hears of each mirror as it joins, before any
// request, so its series can start at zero and a scrape tells a mirror that never served
// a corrupt chunk from a metric that is missing (internal/metrics); peers are left out.
func TestMirrorMetricsStartAtZero(t *testing.T) {
	dir, _, _ := mirrorImage(t, 1<<20, 9)
	a, b := startMirror(t, dir), startMirror(t, dir)
	m := newObserver()
	set := newSet(t, store.MirrorOptions{Metrics: m}, a.store(t), b.store(t))
	set.AddPeer(newHTTP(t, "http://127.0.0.1:1"))
	if got, want := m.Added(), []string{a.store(t).String(), b.store(t).String()}; !slices.Equal(got, want) {
		t.Errorf("mirrors announced %q, want %q", got, want)
	}
}
