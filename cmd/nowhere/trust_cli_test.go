package main

// The attacks of docs/security.md, each made the way a real attacker would: the test is the
// publisher (nowhere pack --key) and the mirror operator (a directory served by
// `nowhere serve` on 127.0.0.1, which the test tampers with like a compromised mirror
// would), and the client is the real nowhere binary. Every refusal must be one line on
// stderr naming the reason, with a non-zero exit.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// trustCLI runs the nowhere binary built from this package.
type trustCLI struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

func newTrustCLI(t *testing.T) *trustCLI {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "nowhere")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The default trust state lives under XDG_CACHE_HOME: keep it inside the test.
	env := append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, "xdg-cache"))
	return &trustCLI{t: t, bin: bin, dir: dir, env: env}
}

// forTest returns c reporting to t (a subtest).
func (c *trustCLI) forTest(t *testing.T) *trustCLI {
	cc := *c
	cc.t = t
	return &cc
}

func (c *trustCLI) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

// run runs nowhere with args and returns stdout, stderr and the exit status.
func (c *trustCLI) run(args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	cmd.Dir = c.dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("nowhere %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// ok runs nowhere and fails the test unless it succeeds.
func (c *trustCLI) ok(args ...string) (string, string) {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("nowhere %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out, errOut
}

// refused runs nowhere, expects failure with exactly one stderr line containing every
// one of want, and returns that line.
func (c *trustCLI) refused(want []string, args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	line := strings.TrimRight(errOut, "\n")
	if code == 0 {
		c.t.Fatalf("nowhere %s succeeded; want a refusal\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out, errOut)
	}
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "nowhere: ") {
		c.t.Fatalf("nowhere %s: want one line on stderr, got:\n%s", strings.Join(args, " "), errOut)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			c.t.Fatalf("nowhere %s: stderr %q does not say %q", strings.Join(args, " "), line, w)
		}
	}
	c.t.Logf("refused as expected: %s", line)
	return line
}

// serve runs `nowhere serve dir` on a free loopback port and returns its URL.
func (c *trustCLI) serve(dir string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, "serve", dir, "--listen", "127.0.0.1:0", "--quiet")
	cmd.Env = c.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		c.t.Fatalf("nowhere serve: %v", err)
	}
	i := strings.Index(line, "http://")
	if i < 0 {
		c.t.Fatalf("nowhere serve said %q", line)
	}
	return strings.TrimSpace(line[i:])
}

// image writes size deterministic pseudo-random bytes (seeded) to a new file.
func (c *trustCLI) image(name string, seed int64, size int) string {
	c.t.Helper()
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	p := c.path(name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// copyTree copies a store directory the way a mirror sync would.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTrustCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds nowhere, serves stores, runs minisign and FUSE")
	}
	testutil.Tool(t, "go") // builds the binary under test
	c := newTrustCLI(t)
	pubKey, pubPub := c.path("publisher.key"), c.path("publisher.pub")
	c.ok("keygen", "--secret", pubKey, "--public", pubPub, "--no-password")
	atkKey, atkPub := c.path("attacker.key"), c.path("attacker.pub")
	c.ok("keygen", "--secret", atkKey, "--public", atkPub, "--no-password")
	imgA1 := c.image("a1.img", 1, 3<<20)
	imgA2 := c.image("a2.img", 2, 3<<20)
	imgB := c.image("b.img", 3, 1<<20)
	evil := c.image("evil.img", 4, 1<<20)

	// The publisher's store: A version 1 and 2, B version 1, all signed.
	pubStore := c.path("publisher-store")
	pack := func(img, st, name string, extra ...string) {
		t.Helper()
		c.ok(append([]string{"pack", img, "--store", st, "--name", name, "--progress", "never"}, extra...)...)
	}
	pack(imgA1, pubStore, "A", "--sign-key", pubKey)
	oldLatest, err := os.ReadFile(filepath.Join(pubStore, "images/A/latest"))
	if err != nil {
		t.Fatal(err)
	}
	pack(imgA2, pubStore, "A", "--sign-key", pubKey)
	pack(imgB, pubStore, "B", "--sign-key", pubKey)

	// mirror returns a fresh copy of the publisher's store, served, for one attack.
	mirror := func(t *testing.T) (dir, url string) {
		dir = filepath.Join(t.TempDir(), "mirror")
		copyTree(t, pubStore, dir)
		return dir, c.serve(dir)
	}

	t.Run("genuine image is accepted", func(t *testing.T) {
		c := c.forTest(t)
		_, url := mirror(t)
		out, _ := c.ok("extract", url+"/images/A", c.path("a.out"), "--key", pubPub, "--progress", "never", "--state", c.path("genuine.state"))
		got, _ := os.ReadFile(c.path("a.out"))
		want, _ := os.ReadFile(imgA2)
		if !bytes.Equal(got, want) {
			t.Fatalf("extracted image differs from version 2 (%s)", out)
		}
		info, _ := c.ok("info", url+"/images/A", "--key", pubPub, "--state", c.path("genuine.state"))
		if !strings.Contains(info, "version:   2\n") || !strings.Contains(info, "signed:    by key ") || !strings.Contains(info, ", verified\n") {
			t.Fatalf("info:\n%s", info)
		}
	})

	t.Run("tampered chunk", func(t *testing.T) {
		c := c.forTest(t)
		dir, url := mirror(t)
		// The mirror replaces one chunk file of the image with other (valid zstd) content.
		ix := decodeIndexFile(t, filepath.Join(dir, "images/A/2.index"))
		// The mirror replaces one chunk file with other content of the same length that
		// compresses well (zeroed-out code, say): sizes all fit, only the hash can tell.
		e := ix.Entries[0]
		evilChunk := chunk.Encode(nil, bytes.Repeat([]byte{'A'}, int(e.Len)))
		if err := os.WriteFile(filepath.Join(dir, store.ChunkPath(e.ID)), evilChunk, 0o644); err != nil {
			t.Fatal(err)
		}
		out := c.path("tampered.out")
		c.refused([]string{"corrupt chunk", "content does not match its name"},
			"extract", url+"/images/A", out, "--key", pubPub, "--timeout", "2s", "--progress", "never", "--state", c.path("tampered.state"))
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("a refused extract left %s behind", out)
		}
	})

	t.Run("index re-signed with another key", func(t *testing.T) {
		c := c.forTest(t)
		dir, url := mirror(t)
		// The attacker publishes their own image as A, version 3, signed with their key.
		pack(evil, dir, "A", "--sign-key", atkKey)
		atkID := keyIDOf(t, atkPub)
		c.refused([]string{"refused:", "latest pointer is signed by key " + atkID + ", which is not a trusted key"},
			"info", url+"/images/A", "--key", pubPub, "--state", c.path("resigned.state"))
		c.refused([]string{"refused:", "images/A/3.index", "index is signed by key " + atkID + ", which is not a trusted key"},
			"extract", url+"/images/A/3", c.path("resigned.out"), "--key", pubPub, "--progress", "never", "--state", c.path("resigned.state"))
		mnt := t.TempDir()
		c.refused([]string{"refused:", "latest pointer is signed by key " + atkID},
			"mount", url+"/images/A", mnt, "--key", pubPub, "--daemon", "--state", c.path("resigned.state"))
		if ok, _ := fusefs.IsMountpoint(mnt); ok {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			t.Fatal("a refused mount left a mount behind")
		}
	})

	t.Run("index altered after signing", func(t *testing.T) {
		c := c.forTest(t)
		dir, url := mirror(t)
		p := filepath.Join(dir, "images/A/2.index")
		b, _ := os.ReadFile(p)
		b[40] ^= 0x01 // in the compressed body, under the publisher's signature
		os.WriteFile(p, b, 0o644)
		c.refused([]string{"refused:", "does not match the sha256 that images/A/latest pins (altered or swapped)"},
			"info", url+"/images/A", "--key", pubPub, "--state", c.path("altered.state"))
		c.refused([]string{"refused:", "bad signature on the index"},
			"info", url+"/images/A/2", "--key", pubPub, "--state", c.path("altered.state"))
	})

	t.Run("rollback to an old signed index", func(t *testing.T) {
		c := c.forTest(t)
		dir, url := mirror(t)
		cache := c.path("rollback-cache")
		c.ok("extract", url+"/images/A", c.path("rb2.out"), "--key", pubPub, "--cache", cache, "--progress", "never")
		if b, err := os.ReadFile(filepath.Join(cache, trust.StateFileName)); err != nil || !regexp.MustCompile(`(?m)^A@[0-9A-F]+ 2$`).Match(b) {
			t.Fatalf("state in the cache dir after accepting version 2: %q, %v", b, err)
		}
		// The mirror replays the old, genuinely signed pointer to version 1.
		if err := os.WriteFile(filepath.Join(dir, "images/A/latest"), oldLatest, 0o644); err != nil {
			t.Fatal(err)
		}
		c.refused([]string{"refused:", `offers version 1 of "A", older than version 2 already accepted (rollback; remembered in ` + filepath.Join(cache, trust.StateFileName)},
			"extract", url+"/images/A", c.path("rb1.out"), "--key", pubPub, "--cache", cache, "--progress", "never")
		// A client that never saw version 2 cannot know: it takes version 1 (a fresh
		// client's window, bounded by --expires; docs/security.md).
		c.ok("info", url+"/images/A", "--key", pubPub, "--state", c.path("fresh.state"))
		// Asking for version 1 by name is not a rollback: the user chose it.
		c.ok("info", url+"/images/A/1", "--key", pubPub, "--state", filepath.Join(cache, trust.StateFileName))
	})

	t.Run("index for image B served under name A", func(t *testing.T) {
		c := c.forTest(t)
		dir, url := mirror(t)
		// The mirror serves B's signed pointer and index where A's belong.
		copyFile(t, filepath.Join(dir, "images/B/latest"), filepath.Join(dir, "images/A/latest"))
		copyFile(t, filepath.Join(dir, "images/B/1.index"), filepath.Join(dir, "images/A/1.index"))
		c.refused([]string{"refused:", `the pointer is for image "B", not "A" (mix-and-match)`},
			"info", url+"/images/A", "--key", pubPub, "--state", c.path("mix.state"))
		c.refused([]string{"refused:", `the index is for image "B", not "A" (mix-and-match)`},
			"info", url+"/images/A/1", "--key", pubPub, "--state", c.path("mix.state"))
		// Version swap: version 1's index served as version 2.
		copyFile(t, filepath.Join(pubStore, "images/A/1.index"), filepath.Join(dir, "images/A/2.index"))
		c.refused([]string{"refused:", `the index is version 1 of "A", not the requested version 2`},
			"info", url+"/images/A/2", "--key", pubPub, "--state", c.path("mix.state"))
	})

	t.Run("expired index", func(t *testing.T) {
		c := c.forTest(t)
		st := c.path("expiring-store")
		pack(imgB, st, "E", "--sign-key", pubKey, "--expires", "1s")
		url := c.serve(st)
		time.Sleep(2100 * time.Millisecond) // past the expiry, which pack truncates to the second
		c.refused([]string{"refused:", `version 1 of "E" expired at `, "(freeze"},
			"info", url+"/images/E", "--key", pubPub, "--state", c.path("expired.state"))
	})

	t.Run("unsigned index", func(t *testing.T) {
		c := c.forTest(t)
		st := c.path("unsigned-store")
		pack(imgB, st, "U")
		url := c.serve(st)
		c.refused([]string{"refused:", "the latest pointer is not signed"},
			"info", url+"/images/U", "--key", pubPub, "--state", c.path("unsigned.state"))
		c.refused([]string{"refused:", "the index is not signed"},
			"info", url+"/images/U/1", "--key", pubPub, "--state", c.path("unsigned.state"))
		c.refused([]string{"no trusted key"}, "info", url+"/images/U", "--state", c.path("unsigned.state"))
		out, errOut := c.ok("extract", url+"/images/U", c.path("u.out"), "--insecure", "--progress", "never", "--state", c.path("unsigned.state"))
		if !strings.Contains(errOut, "WARNING: --insecure") || !strings.Contains(errOut, "WARNING: INSECURE: accepting image U version 1 unverified: the index is not signed") {
			t.Fatalf("--insecure without a loud warning:\nstdout:\n%s\nstderr:\n%s", out, errOut)
		}
		if b, err := os.ReadFile(c.path("unsigned.state")); err == nil {
			t.Fatalf("an insecure acceptance was remembered: %q", b)
		}
	})

	t.Run("slow retrieval is cut off", func(t *testing.T) {
		c := c.forTest(t)
		// A mirror that trickles its answers: one byte every 100 ms.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "400")
			for i := 0; i < 400; i++ {
				if _, err := w.Write([]byte{'x'}); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}))
		t.Cleanup(srv.Close)
		c.refused([]string{"images/A/latest", "(request deadline)", "gave up after"},
			"info", srv.URL+"/images/A", "--key", pubPub, "--http-timeout", "1s", "--state", c.path("slow.state"))
	})

	t.Run("https mirror with a custom CA", func(t *testing.T) {
		c := c.forTest(t)
		caPEM, cert := trustTestCA(t)
		caFile := c.path("ca.pem")
		os.WriteFile(caFile, caPEM, 0o644)
		root, err := os.OpenRoot(pubStore)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { root.Close() })
		srv := httptest.NewUnstartedServer(server.Handler(root))
		srv.TLS = tlsConfig(cert)
		srv.Config.ErrorLog = discardLog()
		srv.StartTLS()
		t.Cleanup(srv.Close)
		info, _ := c.ok("info", srv.URL+"/images/A", "--key", pubPub, "--ca", caFile, "--state", c.path("tls.state"))
		if !strings.Contains(info, "version:   2\n") {
			t.Fatalf("info over https:\n%s", info)
		}
		c.refused([]string{"certificate signed by unknown authority"},
			"info", srv.URL+"/images/A", "--key", pubPub, "--state", c.path("tls.state"))
	})

	t.Run("minisign verifies what nowhere signed", func(t *testing.T) {
		c := c.forTest(t)
		needMinisign(t)
		idx := filepath.Join(pubStore, "images/A/2.index")
		latest := filepath.Join(pubStore, "images/A/latest")
		// The detached signatures pack writes, checked the way minisign's users would.
		for _, f := range []string{idx, latest} {
			out := runMinisign(t, "-V", "-H", "-p", pubPub, "-m", f)
			if !strings.Contains(out, "Signature and comment signature verified") {
				t.Fatalf("minisign -V %s:\n%s", f, out)
			}
		}
		// The signatures nowhere itself checks, embedded in the files: minisign agrees.
		file, _ := os.ReadFile(idx)
		signed, sig, err := trust.SplitIndex(file)
		if err != nil {
			t.Fatal(err)
		}
		text, psig := trust.SplitPointer(mustRead(t, latest))
		for name, pair := range map[string][2][]byte{"index-part": {signed, sig}, "pointer-part": {text, psig}} {
			m := c.path(name)
			os.WriteFile(m, pair[0], 0o644)
			os.WriteFile(m+".minisig", pair[1], 0o644)
			out := runMinisign(t, "-V", "-H", "-P", pubKeyString(t, pubPub), "-m", m)
			if !strings.Contains(out, "Signature and comment signature verified") {
				t.Fatalf("minisign -V of the embedded %s signature:\n%s", name, out)
			}
			if name == "index-part" && !strings.Contains(out, "Trusted comment: nowhere index A version 2 created ") {
				t.Fatalf("trusted comment:\n%s", out)
			}
		}
		// And a signature by the wrong key is refused by minisign too.
		if out, err := exec.Command("minisign", "-V", "-p", atkPub, "-m", idx).CombinedOutput(); err == nil {
			t.Fatalf("minisign accepted the index with another key:\n%s", out)
		}
	})

	t.Run("keys made by minisign sign for nowhere", func(t *testing.T) {
		c := c.forTest(t)
		needMinisign(t)
		mKey, mPub := c.path("minisign.key"), c.path("minisign.pub")
		runMinisign(t, "-G", "-W", "-p", mPub, "-s", mKey)
		st := c.path("minisign-store")
		pack(imgA1, st, "M", "--sign-key", mKey)
		url := c.serve(st)
		info, _ := c.ok("info", url+"/images/M", "--key", mPub, "--state", c.path("m.state"))
		if !strings.Contains(info, "by key "+keyIDOf(t, mPub)+", verified") {
			t.Fatalf("info:\n%s", info)
		}
		c.ok("info", url+"/images/M", "--key", pubKeyString(t, mPub), "--state", c.path("m.state"))
		c.refused([]string{"signed by key " + keyIDOf(t, mPub) + ", which is not a trusted key"},
			"info", url+"/images/M", "--key", pubPub, "--state", c.path("m.state"))
		c.ok("info", url+"/images/M", "--key", pubPub, "--key", mPub, "--state", c.path("m.state"))

		mnt := t.TempDir()
		mountAndRead(t, c, url+"/images/M", mnt, imgA1, "--key", mPub, "--cache", c.path("m-cache"))
	})

	t.Run("password-protected keys, both ways", func(t *testing.T) {
		c := c.forTest(t)
		needMinisign(t)
		pw := c.path("password")
		os.WriteFile(pw, []byte("correct horse battery\n"), 0o600)
		wrong := c.path("wrong-password")
		os.WriteFile(wrong, []byte("incorrect\n"), 0o600)

		// nowhere's encrypted key signs for minisign (minisign decrypts it on a terminal).
		nKey, nPub := c.path("enc.key"), c.path("enc.pub")
		c.ok("keygen", "--secret", nKey, "--public", nPub, "--password-file", pw)
		msg := c.path("message")
		os.WriteFile(msg, []byte("signed by minisign with a key nowhere made\n"), 0o644)
		out := runMinisignOnTerminal(t, []string{"-S", "-s", nKey, "-m", msg}, "Password:", "correct horse battery")
		if _, err := os.Stat(msg + ".minisig"); err != nil {
			t.Fatalf("minisign -S with nowhere's encrypted key:\n%s", out)
		}
		runMinisign(t, "-V", "-p", nPub, "-m", msg)

		// minisign's encrypted key signs for nowhere.
		mKey, mPub := c.path("menc.key"), c.path("menc.pub")
		runMinisignOnTerminal(t, []string{"-G", "-p", mPub, "-s", mKey}, "Password:", "correct horse battery", "one more time", "correct horse battery")
		st := c.path("enc-store")
		c.refused([]string{"--sign-key: secret key " + mKey + ": wrong password"},
			"pack", imgB, "--store", st, "--name", "P", "--sign-key", mKey, "--password-file", wrong, "--progress", "never")
		pack(imgB, st, "P", "--sign-key", mKey, "--password-file", pw)
		url := c.serve(st)
		c.ok("info", url+"/images/P", "--key", mPub, "--state", c.path("p.state"))
	})
}

func decodeIndexFile(t *testing.T, p string) *index.Index {
	t.Helper()
	ix, err := index.Decode(mustRead(t, p))
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keyIDOf(t *testing.T, pubFile string) string {
	t.Helper()
	k, err := trust.ParsePublicKey(mustRead(t, pubFile))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID()
}

func pubKeyString(t *testing.T, pubFile string) string {
	t.Helper()
	k, err := trust.ParsePublicKey(mustRead(t, pubFile))
	if err != nil {
		t.Fatal(err)
	}
	return k.String()
}

func needMinisign(t *testing.T) {
	t.Helper()
	testutil.Tool(t, "minisign")
}

func runMinisign(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("minisign", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("minisign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mountAndRead mounts src with nowhere mount --daemon, checks the image file reads back
// as want, and unmounts.
func mountAndRead(t *testing.T, c *trustCLI, src, mnt, want string, args ...string) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Missing(t, "no /dev/fuse in this kernel")
	}
	out, _ := c.ok(append([]string{"mount", src, mnt, "--daemon"}, args...)...)
	var pid int
	if i := strings.Index(out, "pid "); i < 0 {
		t.Fatalf("nowhere mount --daemon said %q", out)
	} else {
		fmt.Sscanf(out[i+4:], "%d", &pid)
	}
	t.Cleanup(func() {
		// Only when the test failed before unmounting: then the daemon is still ours.
		if ok, _ := fusefs.IsMountpoint(mnt); ok {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
			if pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	name := filepath.Base(src) + ".img"
	got, err := os.ReadFile(filepath.Join(mnt, name))
	if err != nil {
		t.Fatalf("reading the mounted image: %v", err)
	}
	if !bytes.Equal(got, mustRead(t, want)) {
		t.Fatal("the mounted image differs from the packed one")
	}
	c.ok("umount", mnt)
}

// runMinisignOnTerminal runs minisign with a pseudo-terminal for its password prompts
// (minisign reads passwords only from a terminal), answering each prompt in turn:
// prompts and replies alternate in qa.
func runMinisignOnTerminal(t *testing.T, args []string, qa ...string) string {
	t.Helper()
	ptmx, pts, err := openPTY()
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	defer ptmx.Close()
	cmd := exec.Command("minisign", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		pts.Close()
		t.Fatal(err)
	}
	pts.Close()

	var mu sync.Mutex
	var out bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()

	deadline := time.After(3 * time.Minute) // scrypt with a GiB, on a loaded machine
	seen := 0
	for len(qa) > 0 {
		mu.Lock()
		s := out.String()
		mu.Unlock()
		if i := strings.Index(s[seen:], qa[0]); i >= 0 {
			seen += i + len(qa[0])
			if _, err := io.WriteString(ptmx, qa[1]+"\n"); err != nil {
				t.Fatal(err)
			}
			qa = qa[2:]
			continue
		}
		select {
		case err := <-waitDone:
			t.Fatalf("minisign %s exited (%v) before prompting %q:\n%s", strings.Join(args, " "), err, qa[0], s)
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("minisign %s: no prompt %q:\n%s", strings.Join(args, " "), qa[0], s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	var werr error
	select {
	case werr = <-waitDone:
	case <-deadline:
		_ = cmd.Process.Kill()
		werr = <-waitDone
	}
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
	}
	mu.Lock()
	s := out.String()
	mu.Unlock()
	if werr != nil {
		t.Fatalf("minisign %s: %v\n%s", strings.Join(args, " "), werr, s)
	}
	return s
}
