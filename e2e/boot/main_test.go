// Package boot holds the end-to-end boot tests: a real Debian kernel boots in qemu (TCG
// when KVM cannot run it) with the nowhere initramfs, fetches its root filesystem over
// HTTP from a store served on the host's loopback, and proves from inside the guest that
// it runs from it.
package boot

import (
	"context"
	"fmt"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// env is what every boot test shares: the nowhere binary, the kernel and an initramfs.
var env struct {
	top     string // repository root
	bin     string // static nowhere binary
	kernel  string // PVH vmlinux
	modules string // its /lib/modules/VERSION
	initrd  string // initramfs with no baked defaults (and no baked key)
	// The publisher's key pair (nowhere keygen): every image is packed with secret; the
	// boot trusts public (a file) or publicKey (its base64 line, for nowhere.key=).
	secret, public, publicKey string
	err                       error
}

var (
	setupOnce sync.Once
	setupDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if setupDir != "" {
		os.RemoveAll(setupDir)
	}
	os.Exit(code)
}

func setup(tmp string) error {
	top, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	env.top = top
	env.bin = filepath.Join(tmp, "nowhere")
	build := exec.Command("go", "build", "-trimpath", "-o", env.bin, "./cmd/nowhere")
	build.Dir = top
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	// The Debian kernel (downloaded once into .cache, never installed on the host).
	out, err := exec.Command(filepath.Join(top, "scripts/fetch-kernel.sh")).Output()
	if err != nil {
		return fmt.Errorf("scripts/fetch-kernel.sh: %v", err)
	}
	kdir := strings.TrimSpace(string(out))
	env.kernel, env.modules = filepath.Join(kdir, "vmlinux"), filepath.Join(kdir, "modules")
	env.secret, env.public = filepath.Join(tmp, "publisher.key"), filepath.Join(tmp, "publisher.pub")
	if out, err := exec.Command(env.bin, "keygen", "--secret", env.secret, "--public", env.public, "--no-password").CombinedOutput(); err != nil {
		return fmt.Errorf("nowhere keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(env.public)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(pub)), "\n")
	env.publicKey = lines[len(lines)-1]
	env.initrd = filepath.Join(tmp, "initrd.img")
	if out, err := exec.Command(env.bin, "initramfs", "-o", env.initrd, "--modules", env.modules).CombinedOutput(); err != nil {
		return fmt.Errorf("nowhere initramfs: %v\n%s", err, out)
	}
	return nil
}

func needEnv(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM: not in -short")
	}
	if os.Geteuid() != 0 {
		testutil.Missing(t, "needs root (images are built from root-owned trees; make test runs as root)")
	}
	setupOnce.Do(func() {
		setupDir, env.err = os.MkdirTemp("", "nowhere-e2e-boot-")
		if env.err == nil {
			env.err = setup(setupDir)
		}
	})
	if env.err != nil {
		t.Fatalf("setup: %v", env.err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// served is an image packed into a store, served on a loopback address.
type served struct {
	store string
	name  string
	addr  string     // where the server listens (or will)
	srv   *vm.Server // nil until started
	index *index.Index
}

// pack packs img into a new store as image name, signed with the publisher's key, and
// picks a free loopback port for it.
func pack(t *testing.T, img, name string) *served {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	run(t, env.bin, "pack", img, "--store", dir, "--name", name, "--progress", "never", "--sign-key", env.secret)
	s, err := image.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix, _, err := image.Load(context.Background(), s, image.Location{Store: dir, Name: name}, store.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return &served{store: dir, name: name, addr: addr, index: ix}
}

// start serves the store.
func (s *served) start(t *testing.T) {
	t.Helper()
	srv, err := vm.ServeAt(s.store, s.addr, nil)
	if err != nil {
		t.Error(err)
		return
	}
	s.srv = srv
	t.Cleanup(func() { srv.Close() })
}

func (s *served) counts() vm.Counts {
	if s.srv == nil {
		return vm.Counts{}
	}
	return s.srv.Counts()
}

func packAndServe(t *testing.T, img, name string) *served {
	t.Helper()
	s := pack(t, img, name)
	s.start(t)
	return s
}

// bootOpts is one VM run.
type bootOpts struct {
	initrd  string
	args    string // kernel command line
	mem     int
	timeout time.Duration
	expect  []string
	disks   []string
	relay   string // where the guest's connections to 10.0.2.100 go ("": the store, s.addr)
	// relayCmd replaces the relay command qemu runs per guest connection (nil: nowhere vm
	// relay to relay or s.addr).
	relayCmd []string
	onMatch  func(re *regexp.Regexp, at time.Duration)
}

// boot runs a VM against s until it powers off; failing that, the test fails with the
// console's end.
func boot(t *testing.T, s *served, o bootOpts) vm.Result {
	t.Helper()
	var res []*regexp.Regexp
	for _, e := range o.expect {
		res = append(res, regexp.MustCompile(e))
	}
	// NOWHERE_E2E_LOGS=DIR keeps each test's console log for reading afterwards.
	logDir := os.Getenv("NOWHERE_E2E_LOGS")
	if logDir == "" {
		logDir = t.TempDir()
	}
	os.MkdirAll(logDir, 0o755)
	log, err := os.Create(filepath.Join(logDir, strings.ReplaceAll(t.Name(), "/", "_")+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	to := s.addr
	if o.relay != "" {
		to = o.relay
	}
	relay := []string{env.bin, "vm", "relay", to}
	if o.relayCmd != nil {
		relay = o.relayCmd
	}
	start := time.Now()
	// One vCPU: under TCG on a loaded 2-core host a second vCPU thread can be starved long
	// enough for the guest kernel to stall in RCU (seen once in CI: "rcu_preempt kthread
	// timer wakeup didn't happen", no progress for 6 minutes).
	r, err := vm.Run(ctx, vm.Config{
		Kernel: env.kernel, Initrd: o.initrd, Memory: o.mem, CPUs: 1, Accel: "auto",
		Append:  "panic=-1 loglevel=4 " + o.args,
		Relay:   relay,
		Disks:   o.disks,
		Console: log,
		Expect:  res,
		OnMatch: o.onMatch,
	})
	t.Logf("VM ran %.1f s (accel %s); marks %v; served %+v", time.Since(start).Seconds(), r.Accel, r.Matches, s.counts())
	if err != nil || !r.PoweredOff {
		t.Fatalf("VM: err=%v powered-off=%v; console:\n%s", err, r.PoweredOff, tail(r.Console, 120))
	}
	return r
}

// line returns the first console line starting with prefix, without it.
func line(console, prefix string) string {
	for _, l := range strings.Split(console, "\n") {
		l = strings.TrimRight(l, "\r")
		if i := strings.Index(l, prefix); i >= 0 {
			return strings.TrimSpace(l[i+len(prefix):])
		}
	}
	return ""
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// daemonStat reads a counter from the root daemon's "stats" line (kill -USR1).
func daemonStat(console, key string) int64 {
	m := regexp.MustCompile(`nowhere-root: stats .*\b` + key + `=(\d+)`).FindStringSubmatch(console)
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}
