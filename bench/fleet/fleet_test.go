package main

import (
	"bytes"
	"encoding/csv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/fleet"
	"github.com/nowhere-boot/nowhere/internal/testnet"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// TestFleetSmoke runs the whole benchmark machinery small: 5 clients replaying a trace
// that reads 6 of a signed 8 MiB image's MiB, against an origin behind a 50 Mbit/s link
// in a network namespace, directly, through squid, and as LAN peers. Directly, the origin
// serves every client's chunks; through the proxy or the peers about one working set.
func TestFleetSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no namespaces")
	}
	testutil.NetNamespaces(t)
	if err := testnet.Available(); err != nil {
		t.Fatal(err) // as root, only a missing tool is left: make test installs them
	}
	testutil.Tool(t, "squid")
	dir := t.TempDir()
	fleetBin, nowhereBin := filepath.Join(dir, "nowhere-fleet"), filepath.Join(dir, "nowhere")
	for bin, pkg := range map[string]string{fleetBin: ".", nowhereBin: "../../cmd/nowhere"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(rng.Uint32() >> 27)
	}
	img, st := filepath.Join(dir, "disk.img"), filepath.Join(dir, "store")
	os.WriteFile(img, data, 0o644)
	run(nowhereBin, "keygen", "--secret", filepath.Join(dir, "k.key"), "--public", filepath.Join(dir, "k.pub"), "--no-password")
	run(nowhereBin, "pack", img, "--store", st, "--name", "disk", "--progress", "never", "--key", filepath.Join(dir, "k.key"))
	var tb bytes.Buffer
	if err := fleet.Sequential(int64(len(data)), 6<<20, 256<<10, 4).Write(&tb); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(dir, "trace.txt")
	os.WriteFile(trace, tb.Bytes(), 0o644)
	results := filepath.Join(dir, "results.csv")
	out := run(fleetBin, "run", "--store", st, "--image", "disk", "--key", filepath.Join(dir, "k.pub"), "--trace", trace,
		"--n", "5", "--modes", "direct,proxy,peers", "--rate", "50mbit", "--delay", "10ms", "--results", results,
		"--per-process", "2") // three processes of clients, started together, peers across them
	t.Logf("\n%s", out)

	f, err := os.Open(results)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "each knew 4..4 peers at start") {
		t.Errorf("peers in three processes did not all know each other at start:\n%s", out)
	}
	val := map[string]float64{} // method/metric
	for _, r := range recs[1:] {
		if r[1] != "fleet" || r[4] != "5" {
			t.Fatalf("unexpected row %q", r)
		}
		v, _ := strconv.ParseFloat(r[6], 64)
		val[r[3]+"/"+r[5]] = v
	}
	ws := val["direct/working_set_bytes"]
	if ws == 0 {
		t.Fatal("no working set in the results")
	}
	for _, m := range []string{"direct", "proxy", "peers"} {
		if val[m+"/failed"] != 0 || val[m+"/p99"] <= 0 {
			t.Errorf("%s: %v clients failed, p99 %v s", m, val[m+"/failed"], val[m+"/p99"])
		}
	}
	if got := val["direct/origin_chunk_bytes"] / ws; got < 4.5 {
		t.Errorf("direct: the origin served %.2f working sets to 5 clients, want about 5", got)
	}
	for _, m := range []string{"proxy", "peers"} {
		if got := val[m+"/origin_chunk_bytes"] / ws; got > 1.05 {
			t.Errorf("%s: the origin served %.2f working sets, want at most 1.05", m, got)
		}
	}
	if val["peers/from_peers_bytes"] < 2*ws {
		t.Errorf("peers: %v bytes came from peers, want most of 4 working sets", val["peers/from_peers_bytes"])
	}
}
