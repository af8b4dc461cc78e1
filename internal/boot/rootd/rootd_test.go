package rootd

import (
	"bytes"
	"crypto/rand"
	"io"
	stdlog "log"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// TestDaemonServesTheImageAsARootDaemon starts the real binary as the root daemon on this
// machine (no VM): it must serve the signed image byte for byte from a loopback server,
// through the proxy its spec names (nowhere.proxy=), export the metrics docs/mirrors.md
// lists where its spec says (nowhere.metrics=), carry the name and OOM exemption a root
// daemon needs, and shrug off SIGTERM.
func TestDaemonServesTheImageAsARootDaemon(t *testing.T) {
	needRootDaemonEnv(t)
	dir := t.TempDir()
	bin := buildNowhere(t, dir)
	secret, public := keygen(t, bin, dir, "publisher")
	img := make([]byte, 3<<20+12345)
	rand.Read(img)
	os.WriteFile(filepath.Join(dir, "disk.img"), img, 0o644)
	storeDir := filepath.Join(dir, "store")
	packImage(t, bin, filepath.Join(dir, "disk.img"), storeDir, "--key", secret)
	srv, err := vm.Serve(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// A forward proxy that notes what passes through it.
	var proxied sync.Map
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		proxied.Store(r.In.URL.String(), true) // a proxy's request line carries the absolute URL
	}, ErrorLog: stdlog.New(io.Discard, "", 0)}) // the dead mirror's requests fail: expected
	defer proxy.Close()

	mnt := filepath.Join(dir, "mnt")
	logFile, _ := os.Create(filepath.Join(dir, "daemon.log"))
	defer logFile.Close()
	p, err := Start(bin, Spec{
		Image: "http://" + srv.Addr + "/images/disk", Mirrors: []string{"http://127.0.0.1:1"}, Proxy: proxy.URL,
		Keys: []string{public}, StateFile: filepath.Join(dir, "trust-state"),
		Mountpoint: mnt, MemCache: 16 << 20, ReadAhead: 1 << 20,
		Metrics: "127.0.0.1:0", // the daemon reports the port it got in Ready
	}, logFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(mnt, unix.MNT_DETACH)
		syscall.Kill(p.Pid, syscall.SIGKILL)
	})
	if p.Ready.Name != "disk" || p.Ready.Version != 1 || p.Ready.Size != int64(len(img)) || p.Ready.File != filepath.Join(mnt, "disk.img") ||
		p.Ready.Store != "http://"+srv.Addr {
		t.Errorf("ready = %+v", p.Ready)
	}
	if state, _ := os.ReadFile(filepath.Join(dir, "trust-state")); !regexp.MustCompile(`(?m)^disk@[0-9A-F]+ 1$`).Match(state) {
		t.Errorf("the trust state does not remember disk version 1: %q", state)
	}
	got, err := os.ReadFile(p.Ready.File)
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("read %d bytes (%v), want the image's %d", len(got), err, len(img))
	}
	var chunks int
	proxied.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), "http://"+srv.Addr+"/chunks/") {
			chunks++
		}
		return true
	})
	if _, ok := proxied.Load("http://" + srv.Addr + "/images/disk/latest"); !ok || chunks == 0 {
		t.Errorf("the proxy carried %d chunk requests and the latest pointer: %v; want everything", chunks, ok)
	}
	checkMetrics(t, p.Ready.Metrics, "http://"+srv.Addr, len(img))
	proc := func(f string) string {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/" + f)
		return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	}
	if c := proc("comm"); c != Comm {
		t.Errorf("comm = %q, want %q", c, Comm)
	}
	if a := proc("cmdline"); a != Argv0 {
		t.Errorf("argv = %q, want %q", a, Argv0)
	}
	// Lowering oom_score_adj needs CAP_SYS_RESOURCE, which some sandboxes withhold (the
	// boot test checks it inside the VM).
	if os.WriteFile("/proc/self/oom_score_adj", []byte("-1"), 0) == nil {
		os.WriteFile("/proc/self/oom_score_adj", []byte("0"), 0)
		if o := proc("oom_score_adj"); o != "-1000" {
			t.Errorf("oom_score_adj = %q", o)
		}
	} else {
		t.Log("this process may not lower oom_score_adj (no CAP_SYS_RESOURCE): not checked here")
	}

	syscall.Kill(p.Pid, syscall.SIGTERM)
	syscall.Kill(p.Pid, syscall.SIGUSR1)
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(p.Pid, 0); err != nil {
		t.Fatalf("the daemon died of SIGTERM: %v", err)
	}
	if _, err := os.ReadFile(p.Ready.File); err != nil {
		t.Errorf("not serving after SIGTERM: %v", err)
	}
	log, _ := os.ReadFile(logFile.Name())
	for _, want := range []string{"got terminated: ignored", "stats reads=", "serving disk version 1"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("daemon log lacks %q:\n%s", want, log)
		}
	}
	// Unmounting ends it.
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(p.Pid, 0) == nil && !zombie(p.Pid) {
		if time.Now().After(deadline) {
			t.Fatal("the daemon is still running after its mount went away")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkMetrics scrapes the daemon's metrics over loopback after the whole image was read
// once: every metric docs/mirrors.md lists is there (the same as mount --metrics), the
// mirror that served the image counts requests and bytes, and the reader counts the reads.
func checkMetrics(t *testing.T, url, mirror string, size int) {
	t.Helper()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, ":0/metrics") {
		t.Fatalf("ready reports metrics at %q, want the loopback port the daemon got", url)
	}
	m := testutil.Scrape(t, url)
	for _, name := range testutil.DocumentedMetrics(t, "../../../docs/mirrors.md") {
		if m[name] == nil {
			t.Errorf("the daemon's metrics lack %s, which docs/mirrors.md lists", name)
		}
	}
	at := map[string]string{"mirror": mirror}
	if n := m.Sum("nowhere_mirror_requests_total", map[string]string{"mirror": mirror, "result": "ok"}); n == 0 {
		t.Errorf("no successful requests counted for %s (mirrors: %q)", mirror, m.Labels("nowhere_mirror_requests_total", "mirror"))
	}
	if n := m.Sum("nowhere_mirror_bytes_total", at); n == 0 {
		t.Errorf("no bytes counted from %s", mirror)
	}
	if n := m.Sum("nowhere_mirror_request_seconds", at); n == 0 {
		t.Errorf("no request latency observed for %s", mirror)
	}
	if n := m.Sum("nowhere_read_bytes_total", nil); n < float64(size) {
		t.Errorf("the reader counts %v bytes read, want at least the image's %d", n, size)
	}
	if n := m.Sum("nowhere_read_errors_total", nil); n != 0 {
		t.Errorf("%v read errors", n)
	}
	// Every read came through the mount: the stack the daemon composes (a profile
	// recording over the image reader) must answer each with views, one writev, no copy.
	if reads, zc := m.Sum("nowhere_reads_total", nil), m.Sum("nowhere_zero_copy_reads_total", nil); reads == 0 || zc != reads {
		t.Errorf("%v of %v reads through the daemon's FUSE mount took the zero-copy path (ReadSlices), want all", zc, reads)
	}
	if m["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
}

// TestDaemonBootsOnWhenMetricsCannotBeServed: the root must not die for metrics. With its
// metrics port taken, the daemon says so in one line and serves the image all the same.
func TestDaemonBootsOnWhenMetricsCannotBeServed(t *testing.T) {
	needRootDaemonEnv(t)
	dir := t.TempDir()
	bin := buildNowhere(t, dir)
	img := make([]byte, 1<<20+777)
	rand.Read(img)
	os.WriteFile(filepath.Join(dir, "disk.img"), img, 0o644)
	storeDir := filepath.Join(dir, "store")
	packImage(t, bin, filepath.Join(dir, "disk.img"), storeDir)
	srv, err := vm.Serve(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	mnt := filepath.Join(dir, "mnt")
	logPath := filepath.Join(dir, "daemon.log")
	logFile, _ := os.Create(logPath)
	defer logFile.Close()
	p, err := Start(bin, Spec{Image: "http://" + srv.Addr + "/images/disk", Insecure: true,
		Mountpoint: mnt, MemCache: 16 << 20, Metrics: busy.Addr().String()}, logFile)
	if err != nil {
		t.Fatalf("the daemon did not start with its metrics port taken: %v", err)
	}
	t.Cleanup(func() {
		unix.Unmount(mnt, unix.MNT_DETACH)
		syscall.Kill(p.Pid, syscall.SIGKILL)
	})
	if p.Ready.Metrics != "" {
		t.Errorf("ready reports metrics at %q, which it cannot serve", p.Ready.Metrics)
	}
	if got, err := os.ReadFile(p.Ready.File); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("read %d bytes (%v), want the image's %d", len(got), err, len(img))
	}
	if err := syscall.Kill(p.Pid, 0); err != nil {
		t.Fatalf("the daemon is gone: %v", err)
	}
	log, _ := os.ReadFile(logPath)
	var said []string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "metrics") {
			said = append(said, l)
		}
	}
	if len(said) != 1 || !strings.Contains(said[0], "nowhere.metrics="+busy.Addr().String()+": cannot serve metrics") ||
		!strings.Contains(said[0], "going on without them") {
		t.Errorf("want one line about the metrics naming the address, got %q in:\n%s", said, log)
	}
}

// TestStartReportsWhyTheDaemonFailed: a spec the daemon cannot use comes back as an
// error, not a hang.
func TestStartReportsWhyTheDaemonFailed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildNowhere(t, dir)
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	_, err := Start(bin, Spec{Image: "http://127.0.0.1:1/no-images-here", Mountpoint: dir}, devnull)
	if err == nil || !strings.Contains(err.Error(), "no /images/") {
		t.Errorf("err = %v, want the daemon's reason", err)
	}
	_, err = Start(bin, Spec{Image: "http://127.0.0.1:1/images/disk", Mountpoint: dir}, devnull)
	if err == nil || !strings.Contains(err.Error(), "no trusted key") || !strings.Contains(err.Error(), "nowhere.insecure") {
		t.Errorf("err = %v, want the daemon to refuse to start without a key", err)
	}
}

// TestDaemonRefusesUntrustedImagesUntilFixed is the boot meeting a store whose image it
// must not run: signed by another key, then unsigned. Each time the daemon says why in one
// line naming the reason, serves nothing and keeps asking; once the publisher publishes a
// version signed with the trusted key, it serves that one. With nowhere.insecure, the
// unsigned image is served, with a warning.
func TestDaemonRefusesUntrustedImagesUntilFixed(t *testing.T) {
	needRootDaemonEnv(t)
	dir := t.TempDir()
	bin := buildNowhere(t, dir)
	secret, public := keygen(t, bin, dir, "publisher")
	other, otherPub := keygen(t, bin, dir, "attacker")
	img := filepath.Join(dir, "disk.img")
	b := make([]byte, 1<<20)
	rand.Read(b)
	os.WriteFile(img, b, 0o644)
	storeDir := filepath.Join(dir, "store")
	packImage(t, bin, img, storeDir, "--key", other) // version 1: another key
	srv, err := vm.Serve(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	mnt := filepath.Join(dir, "mnt")
	logPath := filepath.Join(dir, "daemon.log")
	logFile, _ := os.Create(logPath)
	defer logFile.Close()
	type started struct {
		p   *Process
		err error
	}
	done := make(chan started, 1)
	go func() {
		p, err := Start(bin, Spec{Image: "http://" + srv.Addr + "/images/disk", Keys: []string{public},
			StateFile: filepath.Join(dir, "trust-state"), Mountpoint: mnt, MemCache: 16 << 20}, logFile)
		done <- started{p, err}
	}()
	t.Cleanup(func() {
		unix.Unmount(mnt, unix.MNT_DETACH)
		select {
		case s := <-done:
			if s.p != nil {
				syscall.Kill(s.p.Pid, syscall.SIGKILL)
			}
		case <-time.After(10 * time.Second):
		}
	})
	logLines := func(substr string) []string {
		b, _ := os.ReadFile(logPath)
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, substr) {
				out = append(out, l)
			}
		}
		return out
	}
	waitLine := func(substr string) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if l := logLines(substr); len(l) > 0 {
				return l[0]
			}
			select {
			case s := <-done:
				t.Fatalf("the daemon started (%+v, %v) before it said %q", s.p, s.err, substr)
			default:
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(logPath)
				t.Fatalf("no %q in the daemon's log after 60 s:\n%s", substr, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wrongKey := waitLine("which is not a trusted key")
	if !strings.Contains(wrongKey, "refusing to boot http://"+srv.Addr+"/images/disk: ") || !strings.Contains(wrongKey, keyID(t, otherPub)) ||
		!strings.Contains(wrongKey, "trusted: "+keyID(t, public)) {
		t.Errorf("refusal of another key's image: %q", wrongKey)
	}
	packImage(t, bin, img, storeDir) // version 2: unsigned
	unsigned := waitLine("is not signed")
	if !strings.Contains(unsigned, "refusing to boot http://"+srv.Addr+"/images/disk: ") || !strings.Contains(unsigned, "nowhere.insecure") {
		t.Errorf("refusal of an unsigned image: %q", unsigned)
	}
	if isMountpoint(mnt) {
		t.Fatal("the daemon mounted a refused image")
	}
	packImage(t, bin, img, storeDir, "--key", secret) // version 3: the publisher fixes it
	var s started
	select {
	case s = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the daemon did not serve the signed version within 2 minutes")
	}
	if s.err != nil || s.p.Ready.Version != 3 {
		t.Fatalf("after the fix: %+v, %v; want version 3 served", s.p, s.err)
	}
	done <- s // for the cleanup
	if got, err := os.ReadFile(s.p.Ready.File); err != nil || !bytes.Equal(got, b) {
		t.Errorf("serving version 3: %d bytes, %v", len(got), err)
	}
	// One line per reason: the same refusal again within a minute is not repeated.
	if n, m := len(logLines("which is not a trusted key")), len(logLines("is not signed")); n != 1 || m != 1 {
		b, _ := os.ReadFile(logPath)
		t.Errorf("%d lines about the other key and %d about the missing signature, want one each:\n%s", n, m, b)
	}

	log, _ := os.ReadFile(logPath)
	t.Logf("daemon log:\n%s", log)

	// nowhere.insecure serves an unsigned image, saying so.
	packImage(t, bin, img, storeDir) // version 4: unsigned
	mnt2 := filepath.Join(dir, "mnt2")
	insecureLog, _ := os.Create(filepath.Join(dir, "insecure.log"))
	defer insecureLog.Close()
	p, err := Start(bin, Spec{Image: "http://" + srv.Addr + "/images/disk", Insecure: true, Mountpoint: mnt2, MemCache: 16 << 20}, insecureLog)
	if err != nil {
		t.Fatalf("insecure: %v", err)
	}
	t.Cleanup(func() {
		unix.Unmount(mnt2, unix.MNT_DETACH)
		syscall.Kill(p.Pid, syscall.SIGKILL)
	})
	if p.Ready.Version != 4 {
		t.Errorf("insecure: serving version %d, want the unsigned 4", p.Ready.Version)
	}
	if log, _ := os.ReadFile(insecureLog.Name()); !strings.Contains(string(log), "WARNING: INSECURE: accepting image disk version 4 unverified") {
		t.Errorf("insecure: no warning in the daemon's log:\n%s", log)
	}
}

// buildNowhere builds the static binary the boot runs.
func buildNowhere(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "nowhere")
	build := exec.Command("go", "build", "-o", bin, "../../../cmd/nowhere")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// keygen makes a key pair with nowhere keygen and returns the secret key file and the
// public key (base64, as nowhere.key= takes it).
func keygen(t *testing.T, bin, dir, name string) (secret, public string) {
	t.Helper()
	secret, pubFile := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if out, err := exec.Command(bin, "keygen", "--secret", secret, "--public", pubFile, "--no-password").CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	b, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return secret, lines[len(lines)-1]
}

func keyID(t *testing.T, public string) string {
	t.Helper()
	k, err := trust.ParsePublicKey([]byte(public))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID()
}

// packImage packs img as image "disk" into storeDir (the next version) with extra flags.
func packImage(t *testing.T, bin, img, storeDir string, flags ...string) {
	t.Helper()
	args := append([]string{"pack", img, "--store", storeDir, "--name", "disk", "--progress", "never"}, flags...)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("pack: %v\n%s", err, out)
	}
}

func isMountpoint(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func zombie(pid int) bool {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

// needRootDaemonEnv skips a test that builds the binary and runs it as the root daemon:
// it mounts FUSE without fusermount, so it needs root (make test runs as root).
func needRootDaemonEnv(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and mounts FUSE")
	}
	if os.Geteuid() != 0 {
		testutil.Missing(t, "needs root: FUSE without fusermount (make test runs as root)")
	}
}
