package e2e

import (
	"flag"
	"fmt"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// nowhereBin is the binary under test, built once per run by TestMain.
var nowhereBin string

// workDir holds what the whole run shares: the binary and the fixture images.
var workDir string

// skipReason is set when the suite cannot run here at all (not root, -short).
var skipReason string

// secretKey and publicKey are the run's publisher key pair, made by TestMain with the real
// `nowhere keygen`: the suite signs every image it packs with secretKey (pack --sign-key), and
// every client verifies with publicKey (mount, extract, info --key), as clients do by
// default.
var secretKey, publicKey string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	switch {
	case testing.Short():
		skipReason = "end-to-end tests mount filesystems; skipped with -short"
	case os.Geteuid() != 0:
		skipReason = "end-to-end tests need root (FUSE, loop devices, mount); run them as root, as CI does"
	}
	if skipReason != "" {
		return m.Run()
	}
	var err error
	workDir, err = os.MkdirTemp("", "nowhere-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(workDir)
	nowhereBin = filepath.Join(workDir, "nowhere")
	_, self, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-trimpath", "-o", nowhereBin, "./cmd/nowhere")
	build.Dir = filepath.Join(filepath.Dir(self), "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building nowhere: %v\n%s", err, out)
		return 1
	}
	// The clients' rollback memory (the highest version accepted per image) defaults to
	// $XDG_CACHE_HOME/nowhere: keep it inside this run, not in the machine's cache.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(workDir, "xdg-cache"))
	secretKey, publicKey = filepath.Join(workDir, "publisher.key"), filepath.Join(workDir, "publisher.pub")
	keygen := exec.Command(nowhereBin, "keygen", "--secret", secretKey, "--public", publicKey, "--no-password")
	if out, err := keygen.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: nowhere keygen: %v\n%s", err, out)
		return 1
	}
	return m.Run() // the fixture lives under workDir, removed above
}

// needRoot skips a test when the suite cannot run on this machine (see TestMain).
func needRoot(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testutil.Missing(t, skipReason)
	}
}
