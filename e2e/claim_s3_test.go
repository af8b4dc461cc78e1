package e2e

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// TestS3ClaimIsExclusive: against a real versitygw, the S3 store's CreateFile (how pack
// claims a version) is a conditional PUT the server honours: the first claim of a key
// wins, a second with other bytes gets fs.ErrExist and leaves the object as it was, a
// repeat of the same bytes (a PUT the client retried after losing the answer) succeeds;
// the probe that checks the server found it honouring the condition (no warning) and
// left no object behind.
func TestS3ClaimIsExclusive(t *testing.T) {
	needRoot(t)
	s := startS3(t)
	s.useCredentials(t, true)
	var warnings []string
	st, err := store.NewS3("s3://"+testBucket+"/store", store.S3Options{Warn: func(msg string) { warnings = append(warnings, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const key = "images/os/1.index"
	object := filepath.Join(s.root, testBucket, "store", key) // the posix backend: a file per object
	if err := st.CreateFile(ctx, key, []byte("first pack\n")); err != nil {
		t.Fatalf("claiming a new key: %v", err)
	}
	err = st.CreateFile(ctx, key, []byte("second pack\n"))
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("claiming a key that exists: %v, want fs.ErrExist", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "s3://"+testBucket+"/store/"+key) || strings.Contains(msg, "\n") {
		t.Errorf("the error does not name the object in one line: %q", msg)
	}
	if got := readFile(object); got != "first pack\n" {
		t.Fatalf("the losing claim overwrote the object: it holds %q", got)
	}
	if err := st.CreateFile(ctx, key, []byte("first pack\n")); err != nil {
		t.Errorf("repeating the winning claim (a retried PUT that had landed): %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("versitygw honours If-None-Match, yet the store warned: %q", warnings)
	}
	entries, err := os.ReadDir(filepath.Dir(object))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "1.index" {
			t.Errorf("the claim left %s beside the index", e.Name())
		}
	}
	// Plain writes still replace: only the claim is conditional.
	if err := st.PutFile(ctx, key, []byte("replaced\n")); err != nil || readFile(object) != "replaced\n" {
		t.Errorf("PutFile over an existing key: %v, object %q", err, readFile(object))
	}
}

// TestConcurrentPacksS3 is TestConcurrentPacksClaimDistinctVersions on a real versitygw:
// packs of one name into one bucket, all starting from the same version number, each
// publish a version of their own (the losers renumber on the 412 of their claim), and
// every version verifies with the publisher's key and reads back as its own image. Then
// the same with two `nowhere pack` processes released at the same moment (both held
// behind a gc's lock, so both pick their number after it goes). Their images are large
// enough (16 and 20 MiB) that each is still packing when the other, woken by its own
// poll of the lock up to 2 s later, picks its number: without the claim, both publish
// the same version (seen in every run so far; the in-process packs above collide by
// construction).
func TestConcurrentPacksS3(t *testing.T) {
	needRoot(t)
	s := startS3(t)
	s.useCredentials(t, true)
	bucket := "s3://" + testBucket + "/store"
	backend := filepath.Join(s.root, testBucket, "store")
	dir := t.TempDir()
	secret, pub, pw := updateKeys(t)
	pwText, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	key, err := trust.LoadSecretKey(secret, func() (string, error) { return strings.TrimSpace(string(pwText)), nil })
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := chunk.ParseSpec("fixed:64K")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// In the test: every pack told to publish version 1.
	const n = 3
	imgs := make([]string, n)
	versions := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		imgs[i] = filepath.Join(dir, "lib"+string(rune('a'+i))+".img")
		randomFile(t, imgs[i], (1+i)<<20, uint64(100+i))
		data, err := os.ReadFile(imgs[i])
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.NewS3(bucket, store.S3Options{}) // a store of its own, as a process has
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := pack.Run(ctx, bytes.NewReader(data), st, pack.Options{Name: "os", Spec: spec, Signer: key, Version: 1})
			errs[i] = err
			if err == nil {
				versions[i] = res.Index.Version
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pack %d: %v", i, err)
		}
	}
	if got := slices.Sorted(slices.Values(versions)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("versions published: %v, want 1, 2 and 3, one each", versions)
	}
	verifyVersionsS3(t, backend, bucket, pub, versions, imgs)

	// Two CLI packs at once.
	cli := []string{filepath.Join(dir, "cli-a.img"), filepath.Join(dir, "cli-b.img")}
	randomFile(t, cli[0], 16<<20, 200)
	randomFile(t, cli[1], 20<<20, 201)
	gcStore, err := store.NewS3(bucket, store.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	gcLock, _, err := gcStore.Lock(ctx, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var bgs []*background
	for _, img := range cli {
		bgs = append(bgs, startNowhere(t, "pack", img, "--store", bucket, "--name", "os", "--chunking", "fixed:64K", "--sign-key", secret, "--password-file", pw, "--progress", "never"))
	}
	for _, bg := range bgs {
		if !waitFor(time.Minute, func() bool { return strings.Contains(bg.stderr(), "waiting for the gc") }) {
			t.Fatalf("pack did not wait for the gc's lock: it %s\n%s", bg.state(), bg.stderr())
		}
	}
	gcLock.Unlock()
	packed := regexp.MustCompile(`packed os version (\d+)`)
	var cliVersions []uint64
	for i, bg := range bgs {
		r := bg.wait(t)
		if r.code != 0 {
			t.Fatalf("pack %s: exit %d\n%s", cli[i], r.code, r.stderr)
		}
		if strings.Contains(r.stderr, "warning") {
			t.Errorf("pack %s warned:\n%s", cli[i], r.stderr)
		}
		m := packed.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("pack %s said:\n%s", cli[i], r.stdout)
		}
		v, _ := strconv.ParseUint(m[1], 10, 64)
		cliVersions = append(cliVersions, v)
	}
	if got := slices.Sorted(slices.Values(cliVersions)); !slices.Equal(got, []uint64{4, 5}) {
		t.Fatalf("the two packs published versions %v, want 4 and 5", cliVersions)
	}
	verifyVersionsS3(t, backend, bucket, pub, cliVersions, cli)
}

// verifyVersionsS3 checks a bucket's store after concurrent packs: nowhere verify of the
// objects, ls with the key listing each version, and each version extracted over S3
// (verified with the key) as the image its pack was given.
func verifyVersionsS3(t *testing.T, backend, bucket, pub string, versions []uint64, imgs []string) {
	t.Helper()
	if r := mustNowhere(t, "verify", backend); !strings.Contains(r.stdout, ": 0 problems") {
		t.Fatalf("the bucket's store is damaged:\n%s", r.stdout)
	}
	ls := mustNowhere(t, "ls", bucket, "--key", pub).stdout
	for i, v := range versions {
		vs := strconv.FormatUint(v, 10)
		if !regexp.MustCompile(`(?m)^os\s+` + vs + `\s`).MatchString(ls) {
			t.Errorf("ls does not list version %s:\n%s", vs, ls)
		}
		out := filepath.Join(t.TempDir(), "out.img")
		src := bucket + "/images/os/" + vs
		mustNowhere(t, "extract", src, out, "--key", pub, "--progress", "never", "--state", filepath.Join(t.TempDir(), "state"))
		if !fileEqual(t, out, imgs[i]) {
			t.Errorf("%s does not read back as %s, the image its pack published", src, imgs[i])
		}
	}
}

// TestS3ClaimFallsBackWhereIgnored: a service that ignores If-None-Match on PutObject
// (some S3-compatible servers do; AWS S3 did before August 2024) would let a claim
// overwrite another pack's index. versitygw honours it, so here it sits behind a proxy
// that makes it ignore the condition the way such a service does: before forwarding a
// conditional PUT, the proxy deletes the key, so the PUT succeeds over whatever was
// there. The store's first claim must find out (its probe's conditional overwrite
// succeeds), write nothing, say so in one warning line naming the store, and pack must
// publish as before, with plain writes.
func TestS3ClaimFallsBackWhereIgnored(t *testing.T) {
	needRoot(t)
	s := startS3(t)
	s.useCredentials(t, true)
	target, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	c := s.client(t)
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the Host header the client signed
	var conditional atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.Header.Get("If-None-Match") != "" {
			conditional.Add(1)
			key := strings.TrimPrefix(r.URL.Path, "/"+testBucket+"/")
			_ = c.RemoveObject(r.Context(), testBucket, key, minio.RemoveObjectOptions{})
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	bucket := "s3://" + testBucket + "/store"
	backend := filepath.Join(s.root, testBucket, "store")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The store: an existing key is left alone, the caller told to write plainly, once warned.
	// (Another prefix than pack's store below: its objects are not an index.)
	scratch := "s3://" + testBucket + "/scratch"
	var warnings []string
	st, err := store.NewS3(scratch, store.S3Options{Endpoint: proxy.URL, Warn: func(msg string) { warnings = append(warnings, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	const key = "images/other/1.index"
	if err := st.PutFile(ctx, key, []byte("another pack's index\n")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := st.CreateFile(ctx, key, []byte("this pack's index\n")); !errors.Is(err, store.ErrNoExclusiveCreate) {
			t.Fatalf("claiming on a service that ignores If-None-Match: %v, want ErrNoExclusiveCreate", err)
		}
	}
	if got := readFile(filepath.Join(s.root, testBucket, "scratch", key)); got != "another pack's index\n" {
		t.Errorf("the claim wrote over the existing object: %q", got)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], scratch+": the S3 service ignores If-None-Match") || strings.Contains(warnings[0], "\n") {
		t.Errorf("warnings %q, want one line naming %s", warnings, scratch)
	}
	if conditional.Load() == 0 {
		t.Fatal("no conditional PUT went through the proxy: the test proves nothing")
	}

	// pack: publishes with plain writes, one warning line, nothing left of the probe.
	img := filepath.Join(t.TempDir(), "a.img")
	randomFile(t, img, 1<<20, 300)
	r := mustNowhere(t, "pack", img, "--store", bucket, "--s3-endpoint", proxy.URL, "--name", "os", "--chunking", "fixed:64K", "--progress", "never")
	var warned []string
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.Contains(line, "warning") {
			warned = append(warned, line)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "warning: "+bucket+": the S3 service ignores If-None-Match") {
		t.Errorf("pack's warnings: %q, want one naming %s\nstderr:\n%s", warned, bucket, r.stderr)
	}
	if !strings.Contains(r.stdout, "packed os version 1") {
		t.Fatalf("pack said:\n%s", r.stdout)
	}
	entries, err := os.ReadDir(filepath.Join(backend, "images", "os"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), store.TempPrefix) {
			t.Errorf("the probe left %s in the bucket", e.Name())
		}
	}
	verifyS3(t, backend, bucket, map[string]string{"1": img})
}
