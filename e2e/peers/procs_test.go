package peers

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var nowhereBin, secretKey, publicKey string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nowhere-peers-bin-")
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
	secretKey, publicKey = filepath.Join(dir, "publisher.key"), filepath.Join(dir, "publisher.pub")
	if out, err := exec.Command(nowhereBin, "keygen", "--secret", secretKey, "--public", publicKey, "--no-password").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "keygen: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// proc is a process the test started; cleanup kills its group.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

type procWriter struct{ p *proc }

func (w procWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func start(t *testing.T, name string, cmd *exec.Cmd, env ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = procWriter{p}, procWriter{p}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s still running 30 s after SIGKILL", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) waitOutput(re string, limit time.Duration) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(limit)
	for {
		if m := rx.FindStringSubmatch(p.output()); m != nil {
			return m[len(m)-1]
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

// makeStore packs size bytes of seeded data (random and repetitive blocks) into a signed
// store and returns it with the data's sha256.
func makeStore(t *testing.T, size int, seed uint64) (string, [32]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 9))
	data := make([]byte, size)
	for i := 0; i < size; i += 8192 {
		blk := data[i:min(i+8192, size)]
		if rng.IntN(3) > 0 {
			for j := range blk {
				blk[j] = byte(rng.Uint32())
			}
		} else {
			copy(blk, bytes.Repeat([]byte(fmt.Sprintf("%d peers\n", i)), 1000))
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "test.img")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "store")
	if out, err := exec.Command(nowhereBin, "pack", img, "--store", st, "--name", "test", "--progress", "never", "--sign-key", secretKey).CombinedOutput(); err != nil {
		t.Fatalf("pack: %v\n%s", err, out)
	}
	return st, sha256.Sum256(data)
}

// corruptChunks copies the chunk files of store into dir/chunks, flipping a byte in each.
func corruptChunks(t *testing.T, store, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(store, "chunks"), func(p string, d os.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".cacnk") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0x5a
		rel, _ := filepath.Rel(store, p)
		dst := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		n++
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func hashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err != nil {
			break
		}
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}
