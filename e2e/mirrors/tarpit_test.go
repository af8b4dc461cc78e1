package mirrors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTenTarpitsOneHonest: ten mirrors that answer every probe and metadata request but
// hold chunk requests (tarpitChunks) beside one honest mirror, once named with --mirror
// before it and once in the store's mirrors file. A mount reads the whole 64 MiB image
// right, and no 1 MiB read waits as long as one attempt timeout (30 s; before the mirror
// set hedged past stalls, reads waited 30 s again and again and the read took a minute).
// The times against the honest mirror alone, read the same way in the same test, are
// logged; the benchmark (BenchmarkTarpits, docs/benchmarks.md) is where speed is judged.
func TestTenTarpitsOneHonest(t *testing.T) {
	needFUSE(t)
	st, want := makeStore(t, 64<<20, 16)
	const attemptTimeout = 30 * time.Second
	read := func(t *testing.T, source string, args ...string) (total, longest time.Duration) {
		t.Helper()
		m := mount(t, source, append(args, "--timeout", "2m")...)
		start := time.Now()
		last := start
		sum, err := hashFile(m.image(), func(int64) {
			now := time.Now()
			longest = max(longest, now.Sub(last))
			last = now
		})
		total = time.Since(start)
		if err != nil || sum != want {
			t.Fatalf("read through the mount: %v (content matches: %v)\n%s", err, sum == want, m.output())
		}
		m.stop()
		return total, longest
	}
	tarpits := func(t *testing.T, n int) []*hostileServer {
		var out []*hostileServer
		for range n {
			out = append(out, startHostile(t, tarpitChunks, st, nil))
		}
		return out
	}
	_, honestURL := serveStore(t, st, "127.0.0.1:0")
	alone, _ := read(t, honestURL+"/images/test")
	// check asserts the bound on the longest read, that the tarpits were really asked for
	// chunks (else the case tested nothing), and logs the times.
	check := func(t *testing.T, ts []*hostileServer, total, longest time.Duration) {
		t.Helper()
		t.Logf("64 MiB: %s among ten tarpits, %s from the honest mirror alone (%.2fx); longest 1 MiB read %s",
			total.Round(time.Millisecond), alone.Round(time.Millisecond), total.Seconds()/alone.Seconds(), longest.Round(time.Millisecond))
		if longest >= attemptTimeout {
			t.Errorf("a 1 MiB read waited %s, at least one attempt timeout", longest.Round(time.Millisecond))
		}
		var chunks int64
		for _, tp := range ts {
			chunks += tp.Requests(classChunk)
		}
		if chunks == 0 {
			t.Errorf("no chunk request reached a tarpit")
		}
	}

	t.Run("listed first", func(t *testing.T) {
		ts := tarpits(t, 10)
		args := []string{}
		for _, tp := range ts[1:] {
			args = append(args, "--mirror", tp.URL)
		}
		args = append(args, "--mirror", honestURL)
		total, longest := read(t, ts[0].URL+"/images/test", args...)
		check(t, ts, total, longest)
	})

	t.Run("in the mirrors file", func(t *testing.T) {
		// A copy of the store whose mirrors file names the ten tarpits, served by the
		// honest server alone: the client learns of them from the store it was given.
		copyDir := filepath.Join(t.TempDir(), "store")
		if err := os.CopyFS(copyDir, os.DirFS(st)); err != nil {
			t.Fatal(err)
		}
		ts := tarpits(t, 10)
		var list strings.Builder
		list.WriteString("# ten tarpits\n")
		for _, tp := range ts {
			list.WriteString(tp.URL + "\n")
		}
		if err := os.WriteFile(filepath.Join(copyDir, "mirrors"), []byte(list.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		_, listing := serveStore(t, copyDir, "127.0.0.1:0")
		total, longest := read(t, listing+"/images/test")
		check(t, ts, total, longest)
	})
}
