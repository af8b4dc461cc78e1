package peers

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/testnet"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

const sharePort = 7780

// originRTT is the round trip to the origin: a distant mirror (the WAN scenario of
// docs/benchmarks.md, 100mbit-40ms).
const originRTT = 40 * time.Millisecond

// client is a `nowhere mount --share` on a host of the LAN.
type client struct {
	*proc
	host  *testnet.Host
	mnt   string
	cache string
}

func mountOn(t *testing.T, h *testnet.Host, source, cache string, extra ...string) *client {
	t.Helper()
	mnt := t.TempDir()
	args := append([]string{"mount", source, mnt, "--key", publicKey, "--cache", cache,
		"--share", net.JoinHostPort(h.Addr.String(), strconv.Itoa(sharePort)), "--timeout", "60s"}, extra...)
	p := start(t, "mount on "+h.Name, h.Command(t.Context(), nowhereBin, args...), "XDG_CACHE_HOME="+t.TempDir())
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	p.waitOutput(`mounted test version`, 60*time.Second)
	return &client{proc: p, host: h, mnt: mnt, cache: cache}
}

// TestLANPeers: an origin behind a 40 Mbit/s link and clients on a bridge, each a real
// `nowhere mount --share` in its own network namespace, finding the others by multicast.
// The first client reads the whole image from the origin; the second and third read it
// from their peers (the origin's access log shows each chunk fetched about once). Then a
// peer whose cache holds only corrupt chunks joins, announcing itself like the others:
// a fourth client reads the right content, and demotes that peer, naming it.
func TestLANPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no namespaces, no FUSE")
	}
	testutil.NetNamespaces(t)
	if err := testnet.Available(); err != nil {
		t.Fatal(err) // as root, only a missing tool is left: make test installs them
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Missing(t, "no /dev/fuse: the kernel lacks FUSE")
	}
	st, want := makeStore(t, 12<<20, 1)
	chunkFiles := 0
	filepath.WalkDir(filepath.Join(st, "chunks"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".cacnk") {
			chunkFiles++
		}
		return err
	})

	lan, err := testnet.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lan.Close(); err != nil {
			t.Errorf("removing the test network: %v", err)
		}
	})
	host := func(label string, link testnet.Link) *testnet.Host {
		h, err := lan.AddHost(label, link)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	// The origin is a distant mirror, as for a site: behind a 40 Mbit/s uplink and
	// originRTT away (a delaying proxy on each client's host), while peers answer across
	// the bridge. (With the uplink alone, a lone chunk crossed the idle link's token
	// bucket at line rate: once peers took most requests the origin answered as fast as
	// a peer on a loaded machine, and which one a client asked was a coin toss.)
	originHost := host("origin", testnet.Link{Up: 40_000_000})
	originAddr := net.JoinHostPort(originHost.Addr.String(), "8080")
	origin := start(t, "origin", originHost.Command(t.Context(), nowhereBin, "serve", st, "--listen", originAddr))
	origin.waitOutput(`serving .* on http://`, 30*time.Second)
	join := func(label, cache string, extra ...string) *client {
		t.Helper()
		h := host(label, testnet.Link{})
		p, err := testnet.ProxyTo(h, originAddr, originRTT)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return mountOn(t, h, "http://"+p.Addr()+"/images/test", cache, extra...)
	}

	c1 := join("c1", t.TempDir())
	if hashFile(t, filepath.Join(c1.mnt, "test.img")) != want {
		t.Fatal("client 1 read wrong content")
	}
	afterFirst := chunkGets(origin.output())
	c2 := join("c2", t.TempDir())
	// The third also names the first explicitly (the alternative to announcements).
	c3 := join("c3", t.TempDir(), "--peer", c1.host.URL(sharePort))
	for i, c := range []*client{c2, c3} {
		if hashFile(t, filepath.Join(c.mnt, "test.img")) != want {
			t.Fatalf("client %d read wrong content", i+2)
		}
		if !strings.Contains(c.output(), "peer "+c1.host.URL(sharePort)+" joined") {
			t.Errorf("client %d never heard of client 1:\n%s", i+2, c.output())
		}
	}
	gets := chunkGets(origin.output())
	total, distinct := 0, len(gets)
	for _, n := range gets {
		total += n
	}
	// A plain request to a peer that runs long (a peer stalled on a loaded machine) is
	// hedged to the origin by design, within the hedge budget (docs/mirrors.md): those
	// are counted apart, and bounded by the budget of the two clients.
	hedged := c2.hedged(t) + c3.hedged(t)
	t.Logf("%d chunks in the store; origin chunk requests: %d after client 1, %d after clients 2 and 3 (%d distinct; clients 2 and 3 hedged %d)",
		chunkFiles, sum(afterFirst), total, distinct, hedged)
	if distinct != chunkFiles {
		t.Errorf("the origin served %d distinct chunks, the store has %d", distinct, chunkFiles)
	}
	if budget := 2 * (5 + chunkFiles/20); hedged > budget {
		t.Errorf("clients 2 and 3 hedged %d requests, beyond their budget of %d", hedged, budget)
	}
	if extra := total - sum(afterFirst) - hedged; float64(extra) > 0.1*float64(chunkFiles) {
		t.Errorf("clients 2 and 3 cost the origin %d chunk requests (of %d chunks) besides %d hedges: they did not read from their peers",
			extra, chunkFiles, hedged)
	}
	if status, err := os.ReadFile(filepath.Join(c3.mnt, ".status")); err == nil {
		t.Logf("client 3's sources:\n%s", status)
	}

	// A peer that lies: its cache holds every chunk, each corrupted; it announces itself.
	badCache := t.TempDir()
	corruptChunks(t, st, badCache)
	bad := join("bad", badCache)
	c4 := join("c4", t.TempDir())
	if hashFile(t, filepath.Join(c4.mnt, "test.img")) != want {
		t.Fatal("client 4 read wrong content with a lying peer on the LAN")
	}
	badURL := bad.host.URL(sharePort)
	if !strings.Contains(c4.output(), "peer "+badURL+" joined") {
		t.Fatalf("client 4 never heard of the lying peer:\n%s", c4.output())
	}
	line := regexp.MustCompile(`peer ` + regexp.QuoteMeta(badURL) + ` served a corrupt chunk [0-9a-f]+: .*demoted hard`).FindString(c4.output())
	if line == "" {
		t.Errorf("client 4 did not demote the lying peer %s:\n%s", badURL, c4.output())
	} else {
		t.Logf("client 4: %s", line)
	}
	if status, err := os.ReadFile(filepath.Join(c4.mnt, ".status")); err == nil {
		t.Logf("client 4's sources:\n%s", status)
		if !regexp.MustCompile(`bad .*` + regexp.QuoteMeta(badURL)).Match(status) {
			t.Errorf("the lying peer is not listed as bad:\n%s", status)
		}
	}
}

// hedged returns how many of the client's requests were hedged (repeated on a mirror
// because they ran long): the HEDGED column of its .status, summed over its sources.
func (c *client) hedged(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile(filepath.Join(c.mnt, ".status"))
	if err != nil {
		t.Fatal(err)
	}
	col, n := -1, 0
	for _, line := range strings.Split(string(status), "\n") {
		if strings.Contains(line, "RANK") {
			col = strings.Index(line, "HEDGED") // the table is left-aligned (tabwriter)
			continue
		}
		row := strings.Fields(line) // RANK STATE ...: a source's row, not its last error
		if col < 0 || len(line) <= col || len(row) < 2 || !slices.Contains([]string{"up", "down", "bad"}, row[1]) {
			continue
		}
		v, err := strconv.Atoi(strings.Fields(line[col:])[0])
		if err != nil {
			t.Fatalf("%s: HEDGED column of %q: %v", c.host.Name, line, err)
		}
		n += v
	}
	if col < 0 {
		t.Fatalf("%s: no HEDGED column in .status:\n%s", c.host.Name, status)
	}
	return n
}

var chunkGet = regexp.MustCompile(`GET (/chunks/\S+\.cacnk) 200 `)

// chunkGets counts the chunk requests the origin answered, per chunk.
func chunkGets(log string) map[string]int {
	m := map[string]int{}
	for _, g := range chunkGet.FindAllStringSubmatch(log, -1) {
		m[g[1]]++
	}
	return m
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
