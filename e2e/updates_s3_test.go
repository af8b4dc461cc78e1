package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// versitygwVersion is the S3-compatible server the tests run (github.com/versity/versitygw,
// Apache 2.0, a Go module with a posix backend: objects are plain files).
const versitygwVersion = "v1.8.0"

// versitygw returns the server binary, building it with `go install` into .cache/tools on
// first use (about two minutes on two cores).
func versitygw(t *testing.T) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(self), "..", ".cache", "tools", "versitygw-"+versitygwVersion)
	bin := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/versity/versitygw/cmd/versitygw@"+versitygwVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building versitygw %s: %v\n%s", versitygwVersion, err, out)
	}
	return bin
}

// s3Server is a versitygw serving a directory as buckets on 127.0.0.1.
type s3Server struct {
	url, root, access, secret string
	stop                      func()      // stops the server (also done by the test's cleanup)
	proc                      *os.Process // to pause it (SIGSTOP) in tests of an unreachable service
}

const testBucket = "nowhere-test"

func startS3(t *testing.T) *s3Server {
	t.Helper()
	bin := versitygw(t)
	s := &s3Server{root: t.TempDir(), access: "testaccess", secret: "testsecret-0123456789"}
	if err := os.Mkdir(filepath.Join(s.root, testBucket), 0o755); err != nil { // a bucket is a directory
		t.Fatal(err)
	}
	port := freePort(t)
	logPath := filepath.Join(t.TempDir(), "versitygw.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--access", s.access, "--secret", s.secret, "--port", fmt.Sprintf("127.0.0.1:%d", port), "posix", s.root)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.stop = func() {
		select {
		case <-done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	t.Cleanup(s.stop)
	s.proc = cmd.Process
	s.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	if !waitFor(15*time.Second, func() bool {
		resp, err := http.Get(s.url + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		t.Fatalf("versitygw did not start:\n%s", readFile(logPath))
	}
	return s
}

// useCredentials points the nowhere commands the test runs at the server (through the
// environment, as a user would), with or without credentials.
func (s *s3Server) useCredentials(t *testing.T, with bool) {
	t.Setenv("AWS_ENDPOINT_URL", s.url)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	if with {
		t.Setenv("AWS_ACCESS_KEY_ID", s.access)
		t.Setenv("AWS_SECRET_ACCESS_KEY", s.secret)
	} else {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	}
}

// makePublic lets anyone read (not list) the bucket's objects, like a public bucket
// serving a store to the world.
func (s *s3Server) makePublic(t *testing.T) {
	t.Helper()
	c := s.client(t)
	pol := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, testBucket)
	if err := c.SetBucketPolicy(context.Background(), testBucket, pol); err != nil {
		t.Fatal(err)
	}
}

// client is an S3 client with the server's credentials, for setting a test up.
func (s *s3Server) client(t *testing.T) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(s.url, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(s.access, s.secret, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestS3Store: pack into a bucket, list it, read from it (extract, FUSE mount), sync
// dir -> S3 and S3 -> dir, gc it, and serve it to anonymous HTTP clients as a plain mirror.
func TestS3Store(t *testing.T) {
	needRoot(t)
	s := startS3(t)
	s.useCredentials(t, true)
	key, pub, pw := updateKeys(t)
	dir := t.TempDir()
	v1, v2 := twoVersions(t, dir, 11, make([]byte, 1<<20)) // v2 = v1 + a zero tail: shares every chunk
	bucket := "s3://" + testBucket + "/store"
	for _, img := range []string{v1, v2} {
		mustNowhere(t, "pack", img, "--store", bucket, "--name", "os", "--sign-key", key, "--password-file", pw, "--progress", "never")
	}
	if _, err := os.Stat(filepath.Join(s.root, testBucket, "store/images/os/2.index")); err != nil {
		t.Fatalf("pack wrote no object for the index: %v", err)
	}
	ls := mustNowhere(t, "ls", bucket, "--key", pub).stdout
	if !regexp.MustCompile(`(?m)^os\s+1\s+any\s+3\.0 MiB`).MatchString(ls) || !regexp.MustCompile(`(?m)^os\s+2\s+latest\s+any\s+4\.0 MiB`).MatchString(ls) {
		t.Fatalf("ls %s:\n%s", bucket, ls)
	}
	state := filepath.Join(dir, "state")
	out := filepath.Join(dir, "out.img")
	mustNowhere(t, "extract", bucket+"/images/os/1", out, "--key", pub, "--state", state, "--progress", "never")
	if !fileEqual(t, out, v1) {
		t.Fatal("extract from S3 (version 1) differs")
	}
	m := mountDaemon(t, bucket+"/images/os", "os", "--key", pub, "--state", state)
	mustRun(t, "cmp", m.file, v2)
	m.unmount(t)

	// dir -> S3 -> dir.
	local := filepath.Join(dir, "local")
	mustNowhere(t, "sync", bucket, local, "--key", pub)
	mustNowhere(t, "sync", local, "s3://"+testBucket+"/copy", "--key", pub)
	back := filepath.Join(dir, "back")
	r := mustNowhere(t, "sync", "s3://"+testBucket+"/copy", back, "--key", pub)
	if _, _, copied := parseSync(t, r.stdout); copied != chunkFiles(t, local) {
		t.Errorf("S3 -> dir copied %d chunks, the store has %d", copied, chunkFiles(t, local))
	}
	mustNowhere(t, "verify", back)
	if a, b := mustNowhere(t, "ls", local, "--key", pub, "--json").stdout, mustNowhere(t, "ls", back, "--key", pub, "--json").stdout; a != b {
		t.Errorf("the round trip through S3 changed the listing:\n%s\n%s", a, b)
	}

	// A public bucket is a plain HTTP mirror: no credentials, no nowhere on the server.
	s.makePublic(t)
	s.useCredentials(t, false)
	httpBase := s.url + "/" + testBucket + "/store"
	out2 := filepath.Join(dir, "out2.img")
	mustNowhere(t, "extract", httpBase+"/images/os", out2, "--key", pub, "--state", state, "--progress", "never")
	if !fileEqual(t, out2, v2) {
		t.Fatal("extract over HTTP from the public bucket differs")
	}
	ix := loadIndex(t, local, "os", 2)
	resp, err := http.Get(httpBase + chunkURLPath(ix.Entries[0]))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("a chunk object served with Cache-Control %q, want what nowhere serve sends", cc)
	}
	anon := mustNowhere(t, "ls", bucket, "--key", pub)
	if !regexp.MustCompile(`(?m)^os\s+2\s+latest`).MatchString(anon.stdout) {
		t.Errorf("anonymous ls of a public bucket (from its catalogue):\n%s%s", anon.stdout, anon.stderr)
	}

	// gc in the bucket.
	s.useCredentials(t, true)
	r = mustNowhere(t, "gc", bucket, "--keep", "1", "--keep-within", "0", "--grace", "0", "--sign-key", key, "--password-file", pw)
	if !strings.Contains(r.stdout, "removed 1 (os@1)") {
		t.Fatalf("gc of the bucket:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(s.root, testBucket, "store/images/os/1.index")); !os.IsNotExist(err) {
		t.Errorf("gc left version 1's index in the bucket: %v", err)
	}
	mustNowhere(t, "ls", bucket, "--key", pub)
}
