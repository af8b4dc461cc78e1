package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// TestLsAndPinnedVersions: ls over HTTP (from the catalogue) says exactly what ls of the
// directory (from the indexes) says, verified with the publisher's key; a pinned version
// and the followed latest extract as the images they were packed from.
func TestLsAndPinnedVersions(t *testing.T) {
	needRoot(t)
	key, pub, pw := updateKeys(t)
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	imgs := []string{filepath.Join(dir, "v1.img"), filepath.Join(dir, "v2.img")}
	randomFile(t, imgs[0], 3<<20, 1)
	randomFile(t, imgs[1], 4<<20, 2)
	for _, img := range imgs {
		mustNowhere(t, "pack", img, "--store", st, "--name", "os", "--sign-key", key, "--password-file", pw, "--progress", "never")
	}
	mustNowhere(t, "pack", imgs[0], "--store", st, "--name", "tools", "--expires", "30d", "--sign-key", key, "--password-file", pw, "--progress", "never")
	srv := startNowhereServe(t, st)

	local := mustNowhere(t, "ls", st, "--key", pub, "--json").stdout
	remote := mustNowhere(t, "ls", srv.url, "--key", pub, "--json").stdout
	if local != remote {
		t.Fatalf("ls over HTTP differs from ls of the directory:\n%s\n%s", remote, local)
	}
	type lsVersion struct {
		Version uint64
		Size    int64
		Signed  bool
		Stored  int64
	}
	type lsImage struct {
		Name     string
		Latest   uint64
		Versions []lsVersion
	}
	var images []lsImage
	dec := json.NewDecoder(strings.NewReader(remote))
	for dec.More() {
		var one lsImage
		if err := dec.Decode(&one); err != nil {
			t.Fatal(err)
		}
		images = append(images, one)
	}
	if len(images) != 2 || images[0].Name != "os" || images[1].Name != "tools" {
		t.Fatalf("ls lists %+v, want os and tools", images)
	}
	os1 := images[0]
	if os1.Latest != 2 || len(os1.Versions) != 2 || os1.Versions[0].Size != 3<<20 || os1.Versions[1].Size != 4<<20 ||
		!os1.Versions[0].Signed || os1.Versions[1].Stored < 4<<20 {
		t.Fatalf("ls of os: %+v", os1)
	}
	table := mustNowhere(t, "ls", srv.url+"/images/os", "--key", pub).stdout
	if !regexp.MustCompile(`(?m)^os\s+2\s+latest\s+any\s+4\.0 MiB`).MatchString(table) || strings.Contains(table, "tools") {
		t.Fatalf("ls of one image:\n%s", table)
	}

	// A versions file altered on the server is refused by a client with the key.
	vp := filepath.Join(st, "images/os/versions")
	good := mustRead(t, vp)
	if err := os.WriteFile(vp, []byte(strings.Replace(string(good), "size 3145728", "size 3145729", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	assertOneLineError(t, "ls of a tampered versions file", runNowhere(t, "ls", srv.url+"/images/os", "--key", pub), "versions file", "bad signature")
	if err := os.WriteFile(vp, good, 0o644); err != nil {
		t.Fatal(err)
	}

	// Pinned and followed.
	for _, c := range []struct{ src, want string }{
		{srv.url + "/images/os/1", imgs[0]},
		{srv.url + "/images/os", imgs[1]},
		{srv.url + "/images/os/2", imgs[1]},
	} {
		out := filepath.Join(t.TempDir(), "out.img")
		mustNowhere(t, "extract", c.src, out, "--key", pub, "--progress", "never", "--state", filepath.Join(dir, "state"))
		if !fileEqual(t, out, c.want) {
			t.Errorf("extract %s is not %s", c.src, c.want)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadersNeverSeeAHalfPublishedVersion packs versions one after another while readers
// poll the store over HTTP: whenever the latest pointer (or the versions file) names a
// version, its index is there and every chunk it references is served.
func TestReadersNeverSeeAHalfPublishedVersion(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	const versions = 6
	var imgs []string
	for i := range versions {
		p := filepath.Join(dir, fmt.Sprintf("v%d.img", i+1))
		randomFile(t, p, 6<<20, uint64(100+i)) // all new chunks each time
		imgs = append(imgs, p)
	}
	mustNowhere(t, "pack", imgs[0], "--store", st, "--name", "live", "--progress", "never")
	srv := startNowhereServe(t, st)
	hs, err := store.NewHTTP(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	done := make(chan error, 1)
	go func() {
		for _, img := range imgs[1:] {
			cmd := exec.CommandContext(ctx, nowhereBin, "pack", img, "--store", st, "--name", "live", "--progress", "never", "--parallel", "1")
			if out, err := cmd.CombinedOutput(); err != nil {
				done <- fmt.Errorf("pack %s: %v: %s", img, err, out)
				return
			}
		}
		done <- nil
	}()
	seen := map[uint64]bool{}
	checks := 0
	check := func() error {
		ix, _, err := image.Load(ctx, hs, image.Location{Store: srv.url, Name: "live"}, store.Policy{Timeout: time.Second})
		if err != nil {
			return fmt.Errorf("loading latest: %w", err)
		}
		seen[ix.Version] = true
		for _, e := range ix.Entries {
			if e.Zero {
				continue
			}
			if _, err := hs.Chunk(ctx, chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored}); err != nil {
				return fmt.Errorf("version %d is published but its chunk at %d is not: %w", ix.Version, e.Off, err)
			}
		}
		b, err := hs.File(ctx, catalog.VersionsPath("live"), catalog.MaxVersions)
		if err != nil {
			return err
		}
		text, _ := trust.SplitPointer(b)
		vs, err := catalog.ParseVersions(text)
		if err != nil {
			return err
		}
		for _, v := range vs.Versions {
			if _, err := hs.File(ctx, store.IndexPath("live", v.Version), image.MaxIndexFile); err != nil {
				return fmt.Errorf("the versions file lists version %d before its index: %w", v.Version, err)
			}
		}
		checks++
		return nil
	}
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		if err := check(); err != nil {
			t.Fatal(err)
		}
	}
	if !seen[versions] {
		t.Fatalf("readers never saw the last version (saw %v)", seen)
	}
	t.Logf("%d consistent reads while %d versions were published; versions seen: %v", checks, versions-1, seen)
}

// updateStore packs the ext4 images of the two update trees as versions 1 and 2 of "os"
// and serves the store. It returns the images and the server.
func updateStore(t *testing.T, format string) (v1img, v2img, st string, srv *httpServer) {
	t.Helper()
	tree1, tree2 := updateTrees(t)
	dir := t.TempDir()
	v1img, v2img = filepath.Join(dir, "v1."+format), filepath.Join(dir, "v2."+format)
	for _, c := range [][2]string{{tree1, v1img}, {tree2, v2img}} {
		if err := makeImage(format, c[0], c[1]); err != nil {
			t.Fatal(err)
		}
	}
	st = filepath.Join(dir, "store")
	for _, img := range []string{v1img, v2img} {
		mustNowhere(t, "pack", img, "--store", st, "--name", "os", "--progress", "never")
	}
	return v1img, v2img, st, startNowhereServe(t, st)
}

// TestSeedFetchesOnlyWhatTheOldVersionLacks: a machine holding v1 (an image file, a
// block device) updates to v2 through extract and mount with --seed: the server serves
// exactly the chunks diff says v1 lacks, and the result is v2 bit for bit.
func TestSeedFetchesOnlyWhatTheOldVersionLacks(t *testing.T) {
	for _, format := range []string{"ext4", "squashfs"} {
		t.Run(format, func(t *testing.T) {
			needRoot(t)
			v1img, v2img, _, srv := updateStore(t, format)
			d := runDiffJSON(t, srv.url+"/images/os/1", srv.url+"/images/os/2", "--insecure")
			if d.FetchChunks == 0 || d.SharedChunks == 0 {
				t.Fatalf("diff: %+v: the update should share chunks and add some", d)
			}
			gets := func() int {
				n := 0
				for _, c := range chunkGets(srv.Requests(t)) {
					n += c
				}
				return n
			}

			before := gets()
			out := filepath.Join(t.TempDir(), "v2.img")
			r := mustNowhere(t, "extract", srv.url+"/images/os/2", out, "--insecure", "--seed", v1img, "--progress", "never")
			if got := gets() - before; got != d.FetchChunks {
				t.Errorf("extract --seed v1 fetched %d chunks from the server, diff says v1 lacks %d\n%s%s", got, d.FetchChunks, r.stdout, r.stderr)
			}
			if !fileEqual(t, out, v2img) {
				t.Fatal("extract --seed did not rebuild v2")
			}

			// The same through a loop device holding v1, and a FUSE mount with a cache.
			dev := attachLoop(t, v1img)
			cache := t.TempDir()
			before = gets()
			m := mountDaemon(t, srv.url+"/images/os/2", "os", "--insecure", "--seed", dev, "--cache", cache)
			mustRun(t, "cmp", m.file, v2img)
			if got := gets() - before; got != d.FetchChunks {
				t.Errorf("mount --seed %s fetched %d chunks, diff says %d\n%s", dev, got, d.FetchChunks, readFile(m.log))
			}
			m.unmount(t)

			// The cache now holds all of v2: diff --cache says nothing is left to fetch.
			dc := runDiffJSON(t, srv.url+"/images/os/1", srv.url+"/images/os/2", "--insecure", "--cache", cache)
			if dc.Cache == nil || dc.Cache.FetchChunks != 0 || dc.FetchChunks != d.FetchChunks {
				t.Errorf("diff --cache after the update: %+v", dc)
			}
			// A cache directory as seed: nothing fetched.
			before = gets()
			out2 := filepath.Join(t.TempDir(), "v2b.img")
			mustNowhere(t, "extract", srv.url+"/images/os/2", out2, "--insecure", "--seed", cache, "--progress", "never")
			if got := gets() - before; got != 0 {
				t.Errorf("extract --seed CACHE fetched %d chunks, want 0", got)
			}
		})
	}
}

// TestSeedBadInput: a seed that is not an image supplies nothing wrong (chunks are hash
// checked); a seed that does not exist is one clear error.
func TestSeedBadInput(t *testing.T) {
	needRoot(t)
	_, v2img, _, srv := updateStore(t, "ext4")
	junk := filepath.Join(t.TempDir(), "junk")
	randomFile(t, junk, 1<<20, 9)
	out := filepath.Join(t.TempDir(), "out.img")
	mustNowhere(t, "extract", srv.url+"/images/os/2", out, "--insecure", "--seed", junk, "--progress", "never")
	if !fileEqual(t, out, v2img) {
		t.Fatal("a junk seed changed the result")
	}
	r := runNowhere(t, "extract", srv.url+"/images/os/2", out+"2", "--insecure", "--seed", "/nonexistent/seed")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1] // after the --insecure warnings
	if r.code == 0 || !strings.HasPrefix(last, "nowhere: --seed: ") || !strings.Contains(last, "/nonexistent/seed") {
		t.Errorf("missing seed: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(out + "2"); err == nil {
		t.Error("extract with a missing seed left an output file")
	}
}

var syncLine = regexp.MustCompile(`(\d+) chunks, (\d+) already there, (\d+) copied`)

func parseSync(t *testing.T, out string) (total, present, copied int) {
	t.Helper()
	m := syncLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in sync output: %s", out)
	}
	total, _ = strconv.Atoi(m[1])
	present, _ = strconv.Atoi(m[2])
	copied, _ = strconv.Atoi(m[3])
	return
}

// TestSyncResumesAfterBeingKilled: an http -> dir sync killed mid-way leaves chunks but
// no image advertised; run again it copies only the rest, and the mirror then serves
// the image intact.
func TestSyncResumesAfterBeingKilled(t *testing.T) {
	needRoot(t)
	_, pub, _ := updateKeys(t)
	key := strings.TrimSuffix(pub, ".pub") + ".key"
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	img := filepath.Join(dir, "big.img")
	randomFile(t, img, 48<<20, 42)
	mustNowhere(t, "pack", img, "--store", st, "--name", "big", "--sign-key", key, "--password-file", filepath.Join(filepath.Dir(pub), "pw"), "--progress", "never")
	total := chunkFiles(t, st)
	srv := startNowhereServe(t, st)
	dst := filepath.Join(dir, "mirror")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nowhereBin, "sync", srv.url, dst, "--parallel", "1", "--key", pub, "--progress", "never")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Minute, func() bool { return chunkFiles(t, dst) >= total/4 }) {
		t.Fatal("sync did not copy a quarter of the chunks within a minute")
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	first := chunkFiles(t, dst)
	if first >= total {
		t.Fatalf("sync finished (%d of %d chunks) before it was killed: the test proves nothing", first, total)
	}
	if _, err := os.Stat(filepath.Join(dst, "images/big/latest")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the killed sync advertised the image (latest: %v) with %d of %d chunks", err, first, total)
	}
	if _, err := os.Stat(filepath.Join(dst, "images/big/1.index")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the killed sync wrote an index with %d of %d chunks", first, total)
	}

	reqsBefore := srv.Requests(t)
	r := mustNowhere(t, "sync", srv.url, dst, "--key", pub, "--progress", "never")
	gotTotal, present, copied := parseSync(t, r.stdout)
	if gotTotal != total || present < first || present+copied != total || copied == 0 {
		t.Fatalf("resumed sync: %d chunks, %d there, %d copied; want %d chunks, at least %d there\n%s", gotTotal, present, copied, total, first, r.stdout)
	}
	fetched := 0
	for _, q := range srv.Requests(t)[len(reqsBefore):] {
		if q.Method == "GET" && strings.HasPrefix(q.Path, "/chunks/") {
			fetched++
		}
	}
	if fetched != copied {
		t.Errorf("the resumed sync fetched %d chunks from the source, copied %d", fetched, copied)
	}
	mustNowhere(t, "verify", dst)
	out := filepath.Join(dir, "out.img")
	mustNowhere(t, "extract", dst+"/images/big", out, "--key", pub, "--progress", "never", "--state", filepath.Join(dir, "state"))
	if !fileEqual(t, out, img) {
		t.Fatal("the mirror does not serve the image")
	}
	// Nothing left to do.
	_, present, copied = parseSync(t, mustNowhere(t, "sync", srv.url, dst, "--key", pub, "--progress", "never").stdout)
	if copied != 0 || present != total {
		t.Errorf("a third sync copied %d chunks", copied)
	}
}
