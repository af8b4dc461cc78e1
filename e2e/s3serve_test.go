package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
)

// TestS3ServeThrough: `nowhere serve s3://BUCKET/PREFIX` serves a private bucket over
// plain HTTP, answering every request as `nowhere serve` answers for the same store in a
// directory (versitygw's posix backend keeps the objects as plain files, so the bucket's
// own directory is that store); clients mount and extract through it; the boot menu lists
// the bucket's images; nothing outside the prefix can be reached; a missing bucket or
// refused credentials stop it at start in one line; a public bucket is served without
// credentials.
func TestS3ServeThrough(t *testing.T) {
	needRoot(t)
	s := startS3(t)
	s.useCredentials(t, true)
	key, pub, pw := updateKeys(t)
	dir := t.TempDir()
	v1, v2 := twoVersions(t, dir, 31, bytes.Repeat([]byte("v2"), 256<<10)) // v2 = v1 + 512 KiB more
	bucket := "s3://" + testBucket + "/store"
	for _, img := range []string{v1, v2} {
		mustNowhere(t, "pack", img, "--store", bucket, "--name", "os", "--sign-key", key, "--password-file", pw, "--progress", "never")
	}
	// Beside the prefix, objects a traversal would like to reach; in the store, the files
	// that turn the boot menu on.
	kernel, initrd := []byte("a kernel, as far as the menu knows"), []byte("an initramfs")
	for k, body := range map[string][]byte{
		"secret.txt": []byte("TOP-SECRET-OUTSIDE-THE-PREFIX\n"), "store2/images/os/latest": []byte("TOP-SECRET-OTHER-PREFIX\n"),
		"store/boot/vmlinuz": kernel, "store/boot/initrd.img": initrd,
	} {
		s.put(t, k, body)
	}
	storeDir := filepath.Join(s.root, testBucket, "store")

	viaS3 := startNowhereServe(t, bucket)
	viaDir := startNowhereServe(t, storeDir)
	if !strings.Contains(readFile(filepath.Join(filepath.Dir(viaS3.logPath), "serve.stdout")), "boot menu: ") {
		t.Errorf("serve %s does not announce the boot menu though the bucket has boot/vmlinuz and boot/initrd.img", bucket)
	}

	// Clients read the image through it.
	state := filepath.Join(dir, "state")
	m := mountDaemon(t, viaS3.url+"/images/os", "os", "--key", pub, "--state", state)
	mustRun(t, "cmp", m.file, v2)
	m.unmount(t)
	out := filepath.Join(dir, "out.img")
	mustNowhere(t, "extract", viaS3.url+"/images/os/1", out, "--key", pub, "--state", state, "--progress", "never")
	if !fileEqual(t, out, v1) {
		t.Fatal("extract of version 1 through serve s3:// differs")
	}

	// The same answers as for the directory.
	ix := loadIndex(t, storeDir, "os", 2)
	chunkPath := chunkURLPath(ix.Entries[0])
	chunkBody := fileBytes(t, storeDir, chunkPath)
	size := len(chunkBody)
	type req struct {
		method, path string
		header       map[string]string
	}
	reqs := []req{
		{"GET", chunkPath, nil}, {"HEAD", chunkPath, nil},
		{"GET", chunkPath, map[string]string{"Range": "bytes=100-1099"}},
		{"GET", chunkPath, map[string]string{"Range": "bytes=-10"}},
		{"GET", chunkPath, map[string]string{"Range": fmt.Sprintf("bytes=%d-", size)}},
		{"GET", chunkPath, map[string]string{"If-None-Match": `"` + ix.Entries[0].ID.String() + `"`}},
		{"GET", "/images/os/latest", nil}, {"GET", "/images/os/1.index", nil}, {"GET", "/images/os/versions", nil},
		{"GET", "/images/catalog", nil}, {"HEAD", "/images/os/2.index", nil},
		{"GET", "/boot/vmlinuz", nil}, {"GET", "/boot/initrd.img", map[string]string{"Range": "bytes=3-5"}},
		{"GET", "/chunks/0000/" + strings.Repeat("0", 64) + ".cacnk", nil}, {"GET", "/images/os/99.index", nil},
		{"GET", "/images/nosuch/latest", nil},
		{"GET", "/", nil}, {"GET", "/chunks/", nil}, {"GET", "/images/os", nil}, {"GET", "/images", nil},
		{"PUT", chunkPath, nil}, {"DELETE", "/images/os/latest", nil}, {"POST", "/images/os/latest", nil},
	}
	for _, p := range []string{
		"/../secret.txt", "/images/../../secret.txt", "/chunks/../../secret.txt", "/%2e%2e/secret.txt",
		"/images/..%2f..%2fsecret.txt", "/images/%2e%2e%2f%2e%2e%2fsecret.txt", "/..\\secret.txt",
		"/chunks/..%5c..%5csecret.txt", "/../store2/images/os/latest", "/%2e%2e/store2/images/os/latest",
		"//../secret.txt", "/secret.txt%00",
	} {
		reqs = append(reqs, req{"GET", p, nil})
	}
	for _, r := range reqs {
		a := rawRequest(t, viaS3.url, r.method, r.path, r.header)
		b := rawRequest(t, viaDir.url, r.method, r.path, r.header)
		what := fmt.Sprintf("%s %s %v", r.method, r.path, r.header)
		t.Logf("%s: %d, Cache-Control %q (directory: %d)", what, a.status, a.header.Get("Cache-Control"), b.status)
		if bytes.Contains(a.body, []byte("TOP-SECRET")) {
			t.Errorf("%s: served an object outside the prefix", what)
		}
		if a.status != b.status {
			t.Errorf("%s: status %d through S3, %d from the directory", what, a.status, b.status)
			continue
		}
		for _, h := range []string{"Cache-Control", "Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "Allow"} {
			if x, y := a.header.Get(h), b.header.Get(h); x != y {
				t.Errorf("%s: %s %q through S3, %q from the directory", what, h, x, y)
			}
		}
		if a.status < 300 && !bytes.Equal(a.body, b.body) {
			t.Errorf("%s: %d bytes through S3 differ from the directory's %d", what, len(a.body), len(b.body))
		}
	}
	// The contract itself, not only the likeness.
	if r := rawRequest(t, viaS3.url, "GET", chunkPath, map[string]string{"Range": "bytes=100-1099"}); r.status != 206 ||
		!bytes.Equal(r.body, chunkBody[100:1100]) || r.header.Get("Content-Range") != fmt.Sprintf("bytes 100-1099/%d", size) {
		t.Errorf("Range through S3: %d, Content-Range %q, %d bytes", r.status, r.header.Get("Content-Range"), len(r.body))
	}
	if r := rawRequest(t, viaS3.url, "GET", chunkPath, nil); r.header.Get("Cache-Control") != immutable ||
		r.header.Get("ETag") != `"`+ix.Entries[0].ID.String()+`"` {
		t.Errorf("a chunk through S3: Cache-Control %q, ETag %q", r.header.Get("Cache-Control"), r.header.Get("ETag"))
	}
	if cc := rawRequest(t, viaS3.url, "GET", "/images/os/latest", nil).header.Get("Cache-Control"); cc != "public, max-age=10" {
		t.Errorf("latest through S3: Cache-Control %q, want a short max-age", cc)
	}
	if r := rawRequest(t, viaS3.url, "GET", "/images/os/99.index", nil); r.status != 404 || strings.Contains(r.header.Get("Cache-Control"), "immutable") {
		t.Errorf("a missing index through S3: %d, Cache-Control %q", r.status, r.header.Get("Cache-Control"))
	}
	for _, p := range []string{"/images/os/latest", "/images/os/2.index"} {
		etag := rawRequest(t, viaS3.url, "GET", p, nil).header.Get("ETag")
		if r := rawRequest(t, viaS3.url, "GET", p, map[string]string{"If-None-Match": etag}); etag == "" || r.status != 304 {
			t.Errorf("GET %s If-None-Match %q through S3: %d, want 304", p, etag, r.status)
		}
	}
	menu := rawRequest(t, viaS3.url, "GET", "/boot.ipxe", nil)
	if menu.status != 200 || !strings.Contains(string(menu.body), "item image0 os (version 2") {
		t.Errorf("boot menu through S3: %d\n%s", menu.status, menu.body)
	}

	// Access log, and a graceful stop.
	viaS3.Stop(t)
	seen := map[string]bool{}
	for _, r := range viaS3.Requests(t) {
		seen[r.Method+" "+r.Path+" "+strconv.Itoa(r.Status)] = true
	}
	for _, want := range []string{"GET " + chunkPath + " 200", "GET " + chunkPath + " 206", "GET /images/os/99.index 404", "PUT " + chunkPath + " 405", "GET /boot.ipxe 200"} {
		if !seen[want] {
			t.Errorf("the access log of serve s3:// has no %q", want)
		}
	}

	// Bad input: one line, at start, before listening.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
	assertOneLineError(t, "serve with wrong credentials", runNowhere(t, "serve", bucket, "--listen", "127.0.0.1:0"),
		bucket, "cannot read the bucket", "signature")
	s.useCredentials(t, true)
	assertOneLineError(t, "serve a missing bucket", runNowhere(t, "serve", "s3://no-such-bucket/store", "--listen", "127.0.0.1:0"),
		"no-such-bucket", "does not exist")
	s.useCredentials(t, false)
	assertOneLineError(t, "serve a private bucket without credentials", runNowhere(t, "serve", bucket, "--listen", "127.0.0.1:0"),
		bucket, "cannot read the bucket", "no credentials")

	// A public bucket needs no credentials, and its menu comes from the catalogue (it
	// cannot be listed anonymously).
	s.makePublic(t)
	anon := startNowhereServe(t, bucket)
	m = mountDaemon(t, anon.url+"/images/os", "os", "--key", pub, "--state", state)
	mustRun(t, "cmp", m.file, v2)
	m.unmount(t)
	if menu := rawRequest(t, anon.url, "GET", "/boot.ipxe", nil); menu.status != 200 || !strings.Contains(string(menu.body), "item image0 os (version 2") {
		t.Errorf("boot menu of a public bucket served anonymously: %d\n%s", menu.status, menu.body)
	}

	// The object storage gone: a 502, never an empty 200 or a 404 a client would take for
	// a missing chunk, and the reason in the server's log.
	s.stop()
	if r := rawRequest(t, anon.url, "GET", chunkPath, nil); r.status != http.StatusBadGateway || r.header.Get("Cache-Control") != "" {
		t.Errorf("GET with the object storage stopped: %d, Cache-Control %q: %s", r.status, r.header.Get("Cache-Control"), r.body)
	}
	anon.Stop(t)
	if log := readFile(anon.logPath); !strings.Contains(log, "nowhere: "+bucket+chunkPath+": ") || !strings.Contains(log, "connection refused") {
		t.Errorf("the log of serve s3:// does not say why the object storage failed:\n%s", log)
	}
}

// put writes an object into the test bucket.
func (s *s3Server) put(t *testing.T, key string, body []byte) {
	t.Helper()
	if _, err := s.client(t).PutObject(context.Background(), testBucket, key, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}
