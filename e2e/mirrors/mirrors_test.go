package mirrors

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/testnet"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// slowProxy puts the project's delay line (internal/testnet) in front of upstream
// (host:port), adding latency to every round trip, and returns its base URL.
func slowProxy(t testing.TB, upstream string, latency time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := testnet.NewProxy(ln, latency, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", upstream)
	})
	t.Cleanup(func() { p.Close() })
	return "http://" + p.Addr()
}

// TestMountSurvivesKilledMirror: three mirrors of one store (two nowhere serve, one
// nginx); while a large read runs through the FUSE mount, one mirror is killed. The read
// completes with the right bytes and no error; the mount logs the demotion, and its
// status and metrics show it: every metric docs/mirrors.md lists is served, requests
// failed over, and the surviving mirrors delivered bytes.
func TestMountSurvivesKilledMirror(t *testing.T) {
	needFUSE(t)
	st, want := makeStore(t, 48<<20, 1)
	_, u1 := serveStore(t, st, "127.0.0.1:0")
	p2, u2 := serveStore(t, st, "127.0.0.1:0")
	_, u3, _ := startNginx(t, st)
	metrics := freePort(t)
	m := mount(t, u1+"/images/test", "--mirror", u2, "--mirror", u3, "--timeout", "0",
		"--metrics", metrics, "--mem-cache", "16M")

	killed := false
	sum, err := hashFile(m.image(), func(off int64) {
		if !killed && off >= 16<<20 {
			p2.kill()
			killed = true
		}
	})
	if err != nil {
		t.Fatalf("read through the mount: %v", err)
	}
	if sum != want {
		t.Fatal("image read through the mount differs from the packed one")
	}
	if !killed {
		t.Fatal("the mirror was never killed")
	}
	// The kill lands mid-read with requests in flight on the killed mirror (read-ahead
	// keeps dozens going): they failed over, none failed the read.
	url := "http://" + metrics + "/metrics"
	if n := metric(t, url, "nowhere_read_errors_total"); n != 0 {
		t.Errorf("%v read errors", n)
	}
	m.waitOutput(`mirror `+u2+` (failed|does not answer)`, 10*time.Second)
	for _, u := range []string{u1, u2, u3} {
		if n := metric(t, url, "nowhere_mirror_requests_total", `mirror="`+u+`"`, `result="ok"`); n == 0 {
			t.Errorf("mirror %s served nothing: requests were not spread", u)
		}
	}
	scraped := testutil.Scrape(t, url)
	for _, name := range testutil.DocumentedMetrics(t, "../../docs/mirrors.md") {
		if scraped[name] == nil {
			t.Errorf("mount --metrics lacks %s, which docs/mirrors.md lists", name)
		}
	}
	if n := scraped.Sum("nowhere_failovers_total", nil); n == 0 {
		t.Errorf("no failovers counted after mirror %s was killed mid-read", u2)
	} else {
		t.Logf("%v failovers", n)
	}
	for _, u := range []string{u1, u3} {
		if n := scraped.Sum("nowhere_mirror_bytes_total", map[string]string{"mirror": u}); n == 0 {
			t.Errorf("no bytes counted from the surviving mirror %s", u)
		}
	}
	if n := scraped.Sum("nowhere_mirror_hash_failures_total", nil); n != 0 {
		t.Errorf("%v hash failures, and no mirror served bad bytes", n)
	}
	out, err := exec.Command(nowhereBin, "status", m.mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("nowhere status: %v\n%s", err, out)
	}
	status := string(out)
	for _, want := range []string{"reads:", u1, u2, u3, "STATE"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	if !strings.Contains(lineWith(status, u2), "down") {
		t.Errorf("killed mirror not shown down:\n%s", status)
	}
	// The same report as JSON, for scripts.
	js, err := exec.Command(nowhereBin, "status", "--json", m.mnt).Output()
	if err != nil {
		t.Fatalf("nowhere status --json: %v\n%s", err, js)
	}
	var report struct {
		Image   string `json:"image"`
		Reads   int64  `json:"reads"`
		Mirrors []struct {
			Mirror string `json:"mirror"`
			State  string `json:"state"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal(js, &report); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, js)
	}
	states := map[string]string{}
	for _, m := range report.Mirrors {
		states[m.Mirror] = m.State
	}
	if report.Image != "test" || report.Reads == 0 || len(report.Mirrors) != 3 || states[u2] != "down" || states[u1] != "up" {
		t.Errorf("status --json: image %q, %d reads, mirrors %v; want test, some reads, three with %s down:\n%s", report.Image, report.Reads, states, u2, js)
	}
	// The status file is live: the kernel must not serve a cached copy.
	time.Sleep(1100 * time.Millisecond)
	again, err := os.ReadFile(filepath.Join(m.mnt, ".status"))
	if err != nil || string(again) == status {
		t.Errorf("status file did not change a second later (%v)", err)
	}
	// SIGUSR1 logs a one-line status.
	_ = m.cmd.Process.Signal(syscall.SIGUSR1)
	m.waitOutput(`status: \d+ reads`, 30*time.Second)
	m.stop()
}

func lineWith(text, part string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, part) {
			return l
		}
	}
	return ""
}

// TestMountCorruptMirror: the mount's first mirror serves chunks with flipped bytes. The
// corruption is detected, the mirror demoted hard and logged with its URL, and the
// content read is still exactly the image.
func TestMountCorruptMirror(t *testing.T) {
	needFUSE(t)
	st, want := makeStore(t, 16<<20, 2)
	_, bad := serveStore(t, corruptStore(t, st), "127.0.0.1:0")
	_, good, _ := startNginx(t, st)
	m := mount(t, bad+"/images/test", "--mirror", good, "--timeout", "0")
	sum, err := hashFile(m.image(), nil)
	if err != nil || sum != want {
		t.Fatalf("read through the mount: %v (content matches: %v)", err, sum == want)
	}
	m.waitOutput(`mirror `+bad+` served a corrupt chunk [0-9a-f]+: .*demoted hard`, 10*time.Second)
	out, _ := exec.Command(nowhereBin, "status", m.mnt).CombinedOutput()
	if !strings.Contains(lineWith(string(out), bad), "bad") {
		t.Errorf("corrupt mirror not shown bad:\n%s", out)
	}
	m.stop()
}

// TestMountMovesOffSlowMirror: the mount's first mirror is slowed by 200 ms a request by
// a delay line; the reads move to the two fast mirrors.
func TestMountMovesOffSlowMirror(t *testing.T) {
	needFUSE(t)
	st, want := makeStore(t, 32<<20, 3)
	_, u1, _ := startNginx(t, st)
	slow := slowProxy(t, strings.TrimPrefix(u1, "http://"), 200*time.Millisecond)
	_, fast1 := serveStore(t, st, "127.0.0.1:0")
	_, fast2 := serveStore(t, st, "127.0.0.1:0")
	metrics := freePort(t)
	m := mount(t, slow+"/images/test", "--mirror", fast1, "--mirror", fast2, "--metrics", metrics)
	sum, err := hashFile(m.image(), nil)
	if err != nil || sum != want {
		t.Fatalf("read through the mount: %v (content matches: %v)", err, sum == want)
	}
	url := "http://" + metrics + "/metrics"
	slowN := metric(t, url, "nowhere_mirror_requests_total", `mirror="`+slow+`"`)
	total := metric(t, url, "nowhere_mirror_requests_total")
	if total == 0 || slowN/total >= 0.2 {
		t.Fatalf("slow mirror got %v of %v requests: reads did not move to the fast mirrors", slowN, total)
	}
	t.Logf("slow mirror: %v of %v requests", slowN, total)
	m.stop()
}

// TestMountWaitsForMirrorToReturn: with every mirror down, a read blocks (logging that it
// waits) and finishes by itself, with the right bytes, when one mirror is restarted.
func TestMountWaitsForMirrorToReturn(t *testing.T) {
	needFUSE(t)
	st, want := makeStore(t, 8<<20, 4)
	p1, u1 := serveStore(t, st, "127.0.0.1:0")
	p2, u2 := serveStore(t, st, "127.0.0.1:0")
	m := mount(t, u1+"/images/test", "--mirror", u2, "--timeout", "0", "--readahead", "0")
	p1.kill()
	p2.kill()
	type result struct {
		sum [32]byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := hashFile(m.image(), nil)
		done <- result{sum, err}
	}()
	m.waitOutput(`still failing, the oldest for`, 60*time.Second)
	select {
	case r := <-done:
		t.Fatalf("read finished with every mirror down: %v", r.err)
	default:
	}
	serveStore(t, st, strings.TrimPrefix(u2, "http://")) // the same mirror, back
	select {
	case r := <-done:
		if r.err != nil || r.sum != want {
			t.Fatalf("read after the mirror came back: %v (content matches: %v)", r.err, r.sum == want)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the blocked read did not finish after a mirror came back")
	}
	m.stop()
}

// TestMountTimeoutGivesEIO: with --timeout D, a read no mirror can serve fails with EIO
// within D plus one attempt timeout (30 s), however often the kernel retries the page
// (it retried the same failed read, which made the wait 2-3x D).
func TestMountTimeoutGivesEIO(t *testing.T) {
	needFUSE(t)
	st, _ := makeStore(t, 2<<20, 5)
	p1, u1 := serveStore(t, st, "127.0.0.1:0")
	m := mount(t, u1+"/images/test", "--timeout", "2s", "--readahead", "0")
	p1.kill()
	start := time.Now()
	_, err := hashFile(m.image(), nil)
	took := time.Since(start)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with every mirror gone past --timeout: %v, want EIO", err)
	}
	t.Logf("EIO after %s with --timeout 2s", took.Round(time.Millisecond))
	if bound := 2*time.Second + 30*time.Second; took > bound {
		t.Errorf("EIO after %s, more than --timeout plus one attempt timeout (%s)", took.Round(time.Millisecond), bound)
	}
	m.waitOutput(`gave up after 2s`, 10*time.Second)
	m.stop()
}

// TestMountOfflineFromWarmCache: after one full read with --cache, the image mounts and
// reads completely with every mirror gone; `nowhere cache stats|prune` show and trim it.
func TestMountOfflineFromWarmCache(t *testing.T) {
	needFUSE(t)
	st, want := makeStore(t, 16<<20, 6)
	p1, u1 := serveStore(t, st, "127.0.0.1:0")
	ngx, u2, _ := startNginx(t, st)
	cache := t.TempDir()
	m := mount(t, u1+"/images/test", "--mirror", u2, "--cache", cache, "--cache-size", "1G")
	if sum, err := hashFile(m.image(), nil); err != nil || sum != want {
		t.Fatalf("online read: %v", err)
	}
	m.stop()
	p1.kill()
	ngx.kill()
	for _, u := range []string{u1, u2} {
		if resp, err := http.Get(u + "/images/test/latest"); err == nil {
			resp.Body.Close()
			t.Fatalf("%s still answers", u)
		}
	}

	m2 := mount(t, u1+"/images/test", "--mirror", u2, "--cache", cache, "--cache-size", "1G", "--timeout", "5s")
	if sum, err := hashFile(m2.image(), nil); err != nil || sum != want {
		t.Fatalf("offline read from the warm cache: %v (content matches: %v)", err, sum == want)
	}
	m2.stop()

	out, err := exec.Command(nowhereBin, "cache", "stats", cache).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chunks:") {
		t.Fatalf("cache stats: %v\n%s", err, out)
	}
	out, err = exec.Command(nowhereBin, "cache", "prune", cache, "--to", "1M").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pruned:") {
		t.Fatalf("cache prune: %v\n%s", err, out)
	}
	if n := chunkBytes(t, cache); n > 1<<20 {
		t.Fatalf("%d bytes of chunks left after prune --to 1M", n)
	}
	out, err = exec.Command(nowhereBin, "cache", "prune", cache).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "give --to SIZE") {
		t.Fatalf("prune without a target: %v\n%s", err, out)
	}
}

// chunkBytes adds up the chunk files in a store or cache directory.
func chunkBytes(t testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(filepath.Join(dir, "chunks"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}

// TestMirrorsCommandRanks: `nowhere mirrors` measures every mirror and prints them best
// first: the two fast ones, then the slowed one, then the dead one.
func TestMirrorsCommandRanks(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	st, _ := makeStore(t, 4<<20, 9)
	_, fast1 := serveStore(t, st, "127.0.0.1:0")
	_, fast2 := serveStore(t, st, "127.0.0.1:0")
	_, u3, _ := startNginx(t, st)
	slow := slowProxy(t, strings.TrimPrefix(u3, "http://"), 150*time.Millisecond)
	dead := "http://" + freePort(t)
	out, err := exec.Command(nowhereBin, "mirrors", slow+"/images/test", dead, fast1, fast2, "--samples", "8").Output()
	if err != nil {
		t.Fatalf("nowhere mirrors: %v\n%s", err, out)
	}
	var order []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 12 || f[0] == "RANK" {
			continue
		}
		url := f[len(f)-1]
		order = append(order, url+" "+f[1])
		if f[1] == "up" && f[5] == "-" {
			t.Errorf("no throughput measured for %s:\n%s", url, out)
		}
	}
	if len(order) != 4 || order[2] != slow+" up" || order[3] != dead+" down" ||
		!strings.HasSuffix(order[0], " up") || !strings.HasSuffix(order[1], " up") {
		t.Fatalf("ranking %q; want the two fast, then %s, then %s down:\n%s", order, slow, dead, out)
	}
}

// TestInfoAndExtractUseMirrors: with the store in SOURCE down, info and extract still
// work from a --mirror, and extract reads through a --cache with a quota.
func TestInfoAndExtractUseMirrors(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	st, want := makeStore(t, 4<<20, 10)
	_, live := serveStore(t, st, "127.0.0.1:0")
	dead := "http://" + freePort(t)
	out, err := exec.Command(nowhereBin, "info", dead+"/images/test", "--mirror", live, "--key", publicKey).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "name:      test") {
		t.Fatalf("info with a dead SOURCE and a live --mirror: %v\n%s", err, out)
	}
	img := filepath.Join(t.TempDir(), "out.img")
	cache := t.TempDir()
	out, err = exec.Command(nowhereBin, "extract", dead+"/images/test", img, "--mirror", live,
		"--cache", cache, "--cache-size", "1M", "--progress", "never", "--key", publicKey).CombinedOutput()
	if err != nil {
		t.Fatalf("extract: %v\n%s", err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil || sha256.Sum256(b) != want {
		t.Fatalf("extracted image differs (%v)", err)
	}
	if n := chunkBytes(t, cache); n == 0 || n > 1<<20 {
		t.Fatalf("cache holds %d bytes of chunks with --cache-size 1M", n)
	}
	out, err = exec.Command(nowhereBin, "info", dead+"/images/test", "--mirror", "ftp://x", "--key", publicKey).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--mirror") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("bad --mirror: want one line naming the flag, got %v:\n%s", err, out)
	}
}
