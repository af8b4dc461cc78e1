package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// httpServer is a web server serving a store on 127.0.0.1, started by a test and stopped
// by its cleanup: either `nowhere serve` or nginx with the configuration from docs/nginx.md.
type httpServer struct {
	kind    string // "nowhere" or "nginx"
	url     string // http://127.0.0.1:PORT, no trailing slash
	dir     string // the store it serves
	logPath string // access log
	errPath string // everything else it printed
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	stopSig syscall.Signal // graceful stop: SIGTERM for nowhere, SIGQUIT for nginx
}

// serverKind names a way to serve a store; every HTTP-facing test runs against each.
type serverKind struct {
	name  string
	start func(t *testing.T, dir string) *httpServer
}

var serverKinds = []serverKind{
	{"nowhere", startNowhereServe},
	{"nginx", startNginx},
}

// startProcess starts cmd in its own process group, records its exit, and makes sure the
// test's cleanup stops it (gracefully, then by force).
func (s *httpServer) startProcess(t *testing.T) error {
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func() { s.exitErr = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.stop() })
	return nil
}

// stop ends the server gracefully (it finishes requests in flight) and waits for it; if it
// is still there after 15 s its process group is killed. It returns the exit error.
func (s *httpServer) stop() error {
	select {
	case <-s.done:
		return s.exitErr
	default:
	}
	_ = s.cmd.Process.Signal(s.stopSig)
	select {
	case <-s.done:
		return s.exitErr
	case <-time.After(15 * time.Second):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) // its own group: nginx and its workers
	<-s.done
	return fmt.Errorf("%s did not stop within 15 s of %v: killed", s.kind, s.stopSig)
}

// Stop stops the server and fails the test if it did not exit cleanly. After Stop the
// access log is complete: both servers log a request before they exit.
func (s *httpServer) Stop(t *testing.T) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("%s: stopping: %v\n%s", s.kind, err, readFile(s.errPath))
	}
}

func (s *httpServer) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// startNowhereServe runs `nowhere serve DIR` on a free loopback port.
func startNowhereServe(t *testing.T, dir string) *httpServer {
	t.Helper()
	tmp := t.TempDir()
	s := &httpServer{kind: "nowhere", dir: dir, logPath: filepath.Join(tmp, "serve.stderr"), stopSig: syscall.SIGTERM}
	s.errPath = s.logPath // messages and access log share stderr
	stdout, err := os.Create(filepath.Join(tmp, "serve.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	s.cmd = exec.Command(nowhereBin, "serve", dir, "--listen", "127.0.0.1:0")
	s.cmd.Stdout, s.cmd.Stderr = stdout, stderr
	if err := s.startProcess(t); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)`)
	ok := waitFor(10*time.Second, func() bool {
		if m := re.FindStringSubmatch(readFile(stdout.Name())); m != nil {
			s.url = m[1]
			return true
		}
		return !s.running()
	})
	if !ok || s.url == "" {
		t.Fatalf("nowhere serve did not start: %v\nstdout: %s\nstderr: %s", s.exitErr, readFile(stdout.Name()), readFile(s.logPath))
	}
	return s
}

// nginxConfig wraps the server block of docs/nginx.md in the smallest nginx.conf that keeps
// everything nginx writes inside tmp: its own pid file, logs and temp paths.
func nginxConfig(t *testing.T, tmp, storeDir string, port int) string {
	t.Helper()
	block := nginxServerBlock(t)
	listen := regexp.MustCompile(`(?m)^(\s*)listen\s+[^;]+;`)
	root := regexp.MustCompile(`(?m)^(\s*)root\s+[^;]+;`)
	if n := len(listen.FindAllString(block, -1)); n != 1 {
		t.Fatalf("docs/nginx.md: the server block has %d listen lines, want 1", n)
	}
	if n := len(root.FindAllString(block, -1)); n != 1 {
		t.Fatalf("docs/nginx.md: the server block has %d root lines, want 1", n)
	}
	block = listen.ReplaceAllString(block, fmt.Sprintf("${1}listen 127.0.0.1:%d;", port))
	block = root.ReplaceAllString(block, "${1}root "+strconv.Quote(storeDir)+";")
	var b strings.Builder
	fmt.Fprintf(&b, "daemon off;\nmaster_process on;\nworker_processes 1;\n")
	// The store lives in the test's private temp dir (mode 0700): workers must run as root.
	fmt.Fprintf(&b, "user root;\npid %s;\nerror_log %s notice;\n", filepath.Join(tmp, "nginx.pid"), filepath.Join(tmp, "error.log"))
	fmt.Fprintf(&b, "events { worker_connections 512; }\nhttp {\n")
	fmt.Fprintf(&b, "    access_log %s combined;\n", filepath.Join(tmp, "access.log"))
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "    %s_temp_path %s;\n", p, filepath.Join(tmp, p))
	}
	b.WriteString(block)
	b.WriteString("}\n")
	return b.String()
}

// nginxServerBlock returns the nginx server block that docs/nginx.md publishes, so the
// tests run exactly what the documentation tells users to run.
func nginxServerBlock(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "nginx.md"))
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- nginx-server-block:begin -->", "<!-- nginx-server-block:end -->"
	_, rest, ok := strings.Cut(string(doc), begin)
	body, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("docs/nginx.md: no %s ... %s section", begin, end)
	}
	_, body, ok = strings.Cut(body, "```nginx\n")
	body, _, ok2 = strings.Cut(body, "```")
	if !ok || !ok2 {
		t.Fatal("docs/nginx.md: the server block section holds no ```nginx fenced block")
	}
	return body
}

// startNginx runs nginx with the documented server block on a free loopback port.
func startNginx(t *testing.T, dir string) *httpServer {
	t.Helper()
	bin := testutil.Tool(t, "nginx")
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ { // a free port may be taken before nginx binds it
		tmp := t.TempDir()
		port := freePort(t)
		conf := filepath.Join(tmp, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConfig(t, tmp, dir, port)), 0o644); err != nil {
			t.Fatal(err)
		}
		s := &httpServer{kind: "nginx", dir: dir, url: fmt.Sprintf("http://127.0.0.1:%d", port),
			logPath: filepath.Join(tmp, "access.log"), errPath: filepath.Join(tmp, "error.log"), stopSig: syscall.SIGQUIT}
		out, err := os.Create(filepath.Join(tmp, "nginx.out"))
		if err != nil {
			t.Fatal(err)
		}
		s.cmd = exec.Command(bin, "-c", conf, "-p", tmp, "-e", s.errPath)
		s.cmd.Stdout, s.cmd.Stderr = out, out
		err = s.startProcess(t)
		out.Close()
		if err != nil {
			t.Fatal(err)
		}
		up := waitFor(10*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
				return true
			}
			return !s.running()
		})
		if up && s.running() {
			return s
		}
		_ = s.stop()
		lastErr = readFile(out.Name()) + readFile(s.errPath)
	}
	t.Fatalf("nginx did not start:\n%s", lastErr)
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// request is one line of an access log.
type request struct {
	Method, Path string
	Status       int
	Bytes        int64 // body bytes sent
}

var (
	// nowhere serve: "2026/11/25 16:45:13.446077 127.0.0.1:60760 GET /images/t/latest 200 106 - 65µs"
	nowhereLogLine = regexp.MustCompile(`^\S+ \S+ \S+ (\S+) (\S+) (\d+) (\d+) `)
	// nginx "combined": `127.0.0.1 - - [25/Nov/2026:16:47:38 +0000] "GET /x HTTP/1.1" 200 372 "-" "ua"`
	nginxLogLine = regexp.MustCompile(`^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+)[^"]*" (\d+) (\d+) `)
)

// Requests parses the server's access log. Lines that are not requests (start-up and
// shutdown messages) are skipped.
func (s *httpServer) Requests(t *testing.T) []request {
	t.Helper()
	f, err := os.Open(s.logPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := nowhereLogLine
	if s.kind == "nginx" {
		re = nginxLogLine
	}
	var out []request
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		status, _ := strconv.Atoi(m[3])
		n, _ := strconv.ParseInt(m[4], 10, 64)
		out = append(out, request{Method: m[1], Path: m[2], Status: status, Bytes: n})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// chunkGets counts successful GETs per chunk path.
func chunkGets(reqs []request) map[string]int {
	n := make(map[string]int)
	for _, r := range reqs {
		if r.Method == "GET" && r.Status == 200 && strings.HasPrefix(r.Path, "/chunks/") {
			n[r.Path]++
		}
	}
	return n
}

// bodyBytes sums the body bytes the server sent.
func bodyBytes(reqs []request) int64 {
	var n int64
	for _, r := range reqs {
		n += r.Bytes
	}
	return n
}
