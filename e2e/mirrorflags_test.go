package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The verbs that list or compare a store (ls, diff, sync) take --mirror like mount and
// info do: with the first source a closed port and a --mirror serving the store, each
// gives what it gives against the live server; with every source dead, each fails with
// one line naming the sources.

// deadURL is a loopback URL nobody listens on (a port just closed).
func deadURL(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
}

// checkDemotedLine checks that a command that succeeded through a mirror said the dead
// first source did not answer.
func checkDemotedLine(t *testing.T, what string, r result, dead string) {
	t.Helper()
	if !strings.Contains(r.stderr, "mirror "+dead+" does not answer") {
		t.Errorf("%s: stderr does not say %s did not answer:\n%s", what, dead, r.stderr)
	}
}

func TestLsMirrorFailover(t *testing.T) {
	f := getFixture(t)
	srv := startNowhereServe(t, f.store)
	dead, dead2 := deadURL(t), deadURL(t)

	want := mustNowhere(t, "ls", f.store, "--key", publicKey, "--json").stdout // from the index files
	r := mustNowhere(t, "ls", dead, "--mirror", srv.url, "--key", publicKey, "--json")
	if r.stdout != want {
		t.Errorf("ls DEAD --mirror LIVE:\n%s\nwant (ls of the directory):\n%s", r.stdout, want)
	}
	checkDemotedLine(t, "ls", r, dead)
	for _, format := range formats {
		if !strings.Contains(r.stdout, `"name":"`+format+`"`) {
			t.Errorf("ls through the mirror does not list %s:\n%s", format, r.stdout)
		}
	}
	one := mustNowhere(t, "ls", dead+"/images/erofs", "--mirror", srv.url+"/", "--key", publicKey).stdout
	if !strings.Contains(one, "erofs") || strings.Contains(one, "ext4") {
		t.Errorf("ls DEAD/images/erofs --mirror LIVE:\n%s", one)
	}

	assertOneLineError(t, "ls with every source dead",
		runNowhere(t, "ls", dead, "--mirror", dead2, "--key", publicKey), dead, dead2, "connection refused")
}

func TestDiffMirrorFailover(t *testing.T) {
	f := getFixture(t)
	srv := startNowhereServe(t, f.store)
	dead, dead2 := deadURL(t), deadURL(t)

	want := runDiffJSON(t, srv.url+"/images/ext4", srv.url+"/images/erofs", "--key", publicKey)
	if want.FetchChunks == 0 {
		t.Fatalf("diff ext4 erofs: %+v: nothing to fetch, the comparison proves nothing", want)
	}
	before := len(srv.Requests(t))
	r := mustNowhere(t, "diff", "--json", dead+"/images/ext4", "erofs", "--mirror", srv.url, "--key", publicKey)
	if got := parseDiff(t, r.stdout); got.SharedChunks != want.SharedChunks || got.FetchChunks != want.FetchChunks || got.FetchBytes != want.FetchBytes {
		t.Errorf("diff through the mirror: %+v, want %+v (as from the live server)", got, want)
	}
	checkDemotedLine(t, "diff", r, dead)
	served := map[string]bool{}
	for _, q := range srv.Requests(t)[before:] {
		if q.Method == "GET" && q.Status == 200 {
			served[q.Path] = true
		}
	}
	for _, p := range []string{"/images/ext4/1.index", "/images/erofs/1.index"} {
		if !served[p] {
			t.Errorf("the mirror did not serve %s (served %v)", p, served)
		}
	}

	// --mirror adds sources to one store: two stores make it ambiguous.
	assertOneLineError(t, "diff --mirror with two stores",
		runNowhere(t, "diff", dead+"/images/ext4", srv.url+"/images/erofs", "--mirror", srv.url, "--key", publicKey), "--mirror", "two stores")
	assertOneLineError(t, "diff with every source dead",
		runNowhere(t, "diff", dead+"/images/ext4", "erofs", "--mirror", dead2, "--key", publicKey), dead, dead2, "connection refused")
}

func TestSyncMirrorFailover(t *testing.T) {
	f := getFixture(t)
	srv := startNowhereServe(t, f.store)
	dead, dead2 := deadURL(t), deadURL(t)
	dst := filepath.Join(t.TempDir(), "copy")

	r := mustNowhere(t, "sync", dead, dst, "--mirror", srv.url, "--key", publicKey, "--progress", "never")
	total, present, copied := parseSync(t, r.stdout)
	if want := chunkFiles(t, f.store); total != want || present != 0 || copied != want {
		t.Errorf("sync through the mirror: %d chunks, %d there, %d copied; want %d copied\n%s", total, present, copied, want, r.stdout)
	}
	checkDemotedLine(t, "sync", r, dead)
	if got := len(chunkGets(srv.Requests(t))); got != copied {
		t.Errorf("the mirror served %d distinct chunks, sync copied %d", got, copied)
	}
	mustNowhere(t, "verify", dst)
	want := mustNowhere(t, "ls", f.store, "--key", publicKey, "--json").stdout
	if got := mustNowhere(t, "ls", dst, "--key", publicKey, "--json").stdout; got != want {
		t.Errorf("ls of the copy:\n%s\nwant:\n%s", got, want)
	}

	dst2 := filepath.Join(t.TempDir(), "copy2")
	assertOneLineError(t, "sync with every source dead",
		runNowhere(t, "sync", dead, dst2, "--mirror", dead2, "--key", publicKey, "--progress", "never"), "sync:", dead, dead2, "connection refused")
	if _, err := os.Stat(filepath.Join(dst2, "images")); err == nil {
		t.Error("a sync that read nothing left images/ in its destination")
	}
}

// parseDiff decodes `nowhere diff --json` output.
func parseDiff(t *testing.T, out string) diffJSON {
	t.Helper()
	var d diffJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("diff --json: %v: %s", err, out)
	}
	return d
}
