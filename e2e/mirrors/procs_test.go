package mirrors

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// nowhereBin is the binary under test, built once by TestMain.
var nowhereBin string

// secretKey and publicKey are the run's publisher key pair, made by TestMain with
// `nowhere keygen`: makeStore signs with secretKey, the clients verify with publicKey.
var secretKey, publicKey string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nowhere-mirrors-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	nowhereBin = filepath.Join(dir, "nowhere")
	build := exec.Command("go", "build", "-o", nowhereBin, "github.com/nowhere-boot/nowhere/cmd/nowhere")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building nowhere:", err)
		return 1
	}
	// The clients' rollback memory defaults to $XDG_CACHE_HOME/nowhere: keep it in the run.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "xdg-cache"))
	secretKey, publicKey = filepath.Join(dir, "publisher.key"), filepath.Join(dir, "publisher.pub")
	keygen := exec.Command(nowhereBin, "keygen", "--secret", secretKey, "--public", publicKey, "--no-password")
	if out, err := keygen.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "nowhere keygen: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// proc is a process a test started, killed by the test's cleanup whatever happens. Its
// output goes to a log file and is kept in memory for assertions.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

type lockedWriter struct{ p *proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// start runs a command in its own process group; cleanup kills the group.
func start(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// kill ends the process group at once (SIGKILL) and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s: still running 30 s after SIGKILL", p.name)
	}
}

// waitOutput waits until the output matches re and returns the first submatch.
func (p *proc) waitOutput(re string, limit time.Duration) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(limit)
	for {
		if m := rx.FindStringSubmatch(p.output()); m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return m[0]
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited waiting for %q:\n%s", p.name, re, p.output())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no %q within %s:\n%s", p.name, re, limit, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveStore runs `nowhere serve` on addr (127.0.0.1:0 picks a port) and returns it
// with its base URL.
func serveStore(t testing.TB, dir, addr string) (*proc, string) {
	t.Helper()
	p := start(t, "nowhere serve "+dir, nil, nowhereBin, "serve", dir, "--listen", addr)
	return p, "http://" + p.waitOutput(`serving .* on http://(\S+)`, 30*time.Second)
}

// freePort returns a loopback address with a port nothing listens on right now.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHTTP waits until url answers (any status).
func waitHTTP(t testing.TB, url string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer after %s: %v", url, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startNginx serves a store with nginx on a free loopback port with a config of its own
// (no system service involved): chunks and indexes cacheable for a year, the rest a
// minute, like nowhere serve. It returns the process, the base URL and the access log.
func startNginx(t testing.TB, storeDir string) (*proc, string, string) {
	t.Helper()
	nginx := testutil.Tool(t, "nginx")
	dir := t.TempDir()
	addr := freePort(t)
	access := filepath.Join(dir, "access.log")
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 512; }
http {
  access_log %[2]s;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  default_type application/octet-stream;
  keepalive_requests 100000;
  server {
    listen %[3]s;
    root %[4]s;
    location /chunks/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
    location ~ \.index$ { add_header Cache-Control "public, max-age=31536000, immutable"; }
    location / { add_header Cache-Control "public, max-age=10"; }
  }
}
`, dir, access, addr, storeDir)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "nginx", nil, nginx, "-c", cf, "-p", dir)
	waitHTTP(t, "http://"+addr+"/", 30*time.Second)
	return p, "http://" + addr, access
}

// makeStore packs size bytes of seeded data (a mix of random and repetitive blocks) into
// a new store with `nowhere pack --sign-key secretKey` and returns the store and the data's
// sha256.
func makeStore(t testing.TB, size int, seed uint64) (string, [32]byte) {
	t.Helper()
	data := seededData(size, seed)
	dir := t.TempDir()
	img := filepath.Join(dir, "test.img")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "store")
	out, err := exec.Command(nowhereBin, "pack", img, "--store", st, "--name", "test", "--progress", "never", "--sign-key", secretKey).CombinedOutput()
	if err != nil {
		t.Fatalf("pack: %v\n%s", err, out)
	}
	return st, sha256.Sum256(data)
}

// corruptStore copies a store and flips a byte in every chunk file.
func corruptStore(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "corrupt")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(filepath.Join(dst, "chunks"), func(p string, info os.FileInfo, err error) error {
		if err != nil || !strings.HasSuffix(p, ".cacnk") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0xa5
		return os.WriteFile(p, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// needFUSE skips when FUSE mounts cannot work here.
func needFUSE(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no FUSE mounts")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Missing(t, "no /dev/fuse: the kernel lacks FUSE")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			testutil.Missing(t, "not root and no fusermount3")
		}
	}
}

// mounted is a running `nowhere mount`.
type mounted struct {
	*proc
	mnt string
}

// mount runs `nowhere mount SOURCE MNT --key publicKey args...` in the foreground and
// waits until it serves. Cleanup stops it and, should it be gone without unmounting, detaches the mount.
func mount(t testing.TB, source string, args ...string) *mounted {
	t.Helper()
	mnt := t.TempDir()
	p := start(t, "nowhere mount", nil, append([]string{nowhereBin, "mount", source, mnt, "--key", publicKey}, args...)...)
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) }) // runs after the kill
	p.waitOutput(`mounted test version`, 60*time.Second)
	return &mounted{proc: p, mnt: mnt}
}

func (m *mounted) image() string { return filepath.Join(m.mnt, "test.img") }

// stop unmounts by SIGTERM and waits for the process to exit.
func (m *mounted) stop() {
	m.t.Helper()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		m.t.Fatalf("nowhere mount still running 30 s after SIGTERM")
	}
}

// hashFile reads path in 1 MiB reads, calling at(off) before each, and returns its
// sha256 and the first read error.
func hashFile(path string, at func(off int64)) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var off int64
	for {
		if at != nil {
			at(off)
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, err
		}
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// metric returns the sum of the samples of a Prometheus metric whose labels contain
// every one of match, from the text exposition at url.
func metric(t testing.TB, url, name string, match ...string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, m := range match {
			if !strings.Contains(line, m) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += v
	}
	return total
}

// proxyUser is the unprivileged user squid runs as when started by root.
func proxyUser(t testing.TB) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("proxy")
	if err != nil {
		t.Fatalf("no user proxy for squid to run as (Debian's base-passwd makes it): %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}
