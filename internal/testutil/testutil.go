// Package testutil holds the checks that tests in several packages share about the machine
// they run on. The rule they carry out: `make test` installs every program the tests run
// (scripts/install-deps.sh test) and runs as root, so a missing program is a broken set-up
// and fails the test; a test skips only without root (go test as a user, -short runs) or
// where the kernel lacks the feature.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Tool returns the path of the program name that the test is about to run, looking in PATH
// and then in /usr/sbin and /sbin (where mkfs.ext4, nginx and squid live, often outside a
// user's PATH). When it is not installed the test fails, naming it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s is not installed: scripts/install-deps.sh test installs it (make test runs it first)", name)
	return ""
}

// NetNamespaces skips the test unless it can make network namespaces: it needs root and
// a kernel with them.
func NetNamespaces(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root: network namespaces (make test runs as root)")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		Missing(t, "the kernel has no network namespaces")
	}
}

// CI reports whether the tests run in CI (CI=true, which .ci/run exports).
func CI() bool { return os.Getenv("CI") == "true" }

// Missing ends a test that cannot run because a kernel feature, a program or a privilege
// is missing: it skips, except in CI (CI=true), where a missing part is a broken machine
// and fails the test, so CI cannot go green by skipping. A test that skips by design
// (under -short) calls t.Skip itself.
func Missing(t testing.TB, args ...any) {
	t.Helper()
	if CI() && !testing.Short() {
		t.Fatal(append([]any{"CI=true, and a part is missing: "}, args...)...)
	}
	t.Skip(args...)
}

// Missingf is Missing with a format.
func Missingf(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() && !testing.Short() {
		t.Fatalf("CI=true, and a part is missing: "+format, args...)
	}
	t.Skipf(format, args...)
}
