package e2e

import (
	"fmt"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBadInputGivesOneClearLine feeds every verb what it cannot use. Each time the answer
// is one line on stderr starting with "nowhere:" that names what is wrong and where, a
// non-zero exit, no panic, and nothing left mounted.
func TestBadInputGivesOneClearLine(t *testing.T) {
	f := getFixture(t)
	tmp := t.TempDir()
	mnt := filepath.Join(tmp, "mnt")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(mnt, 0o755))
	aFile := filepath.Join(tmp, "a-file")
	must(os.WriteFile(aFile, []byte("not a store\n"), 0o644))
	notStore := filepath.Join(tmp, "not-a-store")
	must(os.Mkdir(notStore, 0o755))
	newStore := filepath.Join(tmp, "store")

	// A store with damaged indexes and pointers, served over HTTP.
	damaged := copyStore(t, f.store)
	index := func(name string) string { return filepath.Join(damaged, "images", name, "1.index") }
	good, err := os.ReadFile(index("ext4"))
	must(err)
	must(os.WriteFile(index("ext4"), good[:len(good)/2], 0o644))                                         // truncated
	must(os.WriteFile(index("squashfs"), []byte(strings.Repeat("garbage, not an index\n", 100)), 0o644)) // garbage
	must(os.WriteFile(filepath.Join(damaged, "images", "erofs", "latest"), []byte("nonsense\n"), 0o644)) // bad pointer
	must(os.MkdirAll(filepath.Join(damaged, "images", "dirlatest", "latest"), 0o755))                    // latest is a directory
	must(os.MkdirAll(filepath.Join(damaged, "images", "fifolatest"), 0o755))
	must(syscall.Mkfifo(filepath.Join(damaged, "images", "fifolatest", "latest"), 0o644)) // would block a reader
	srv := startNowhereServe(t, damaged)
	url := srv.url + "/images/"
	closed := fmt.Sprintf("http://127.0.0.1:%d/images/ext4", freePort(t))

	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"pack: missing image", []string{"pack", filepath.Join(tmp, "missing.img"), "--store", newStore, "--name", "x"},
			[]string{"missing.img", "no such file"}},
		{"pack: image is a directory", []string{"pack", tmp, "--store", newStore, "--name", "x"}, []string{tmp, "directory"}},
		{"pack: bad --chunking", []string{"pack", f.images["erofs"], "--store", newStore, "--name", "x", "--chunking", "cdc:1:2"},
			[]string{`"cdc:1:2"`}},
		{"pack: bad --chunking kind", []string{"pack", f.images["erofs"], "--store", newStore, "--name", "x", "--chunking", "rabin:64K"},
			[]string{`"rabin:64K"`}},
		{"pack: bad --chunking size", []string{"pack", f.images["erofs"], "--store", newStore, "--name", "x", "--chunking", "fixed:lots"},
			[]string{`"fixed:lots"`}},
		{"pack: bad name", []string{"pack", f.images["erofs"], "--store", newStore, "--name", "../x"}, []string{`"../x"`}},
		{"pack: store is a file", []string{"pack", f.images["erofs"], "--store", aFile, "--name", "x"}, []string{aFile}},
		{"serve: missing store", []string{"serve", filepath.Join(tmp, "nope"), "--listen", "127.0.0.1:0"}, []string{"nope"}},
		{"serve: store is a file", []string{"serve", aFile, "--listen", "127.0.0.1:0"}, []string{aFile, "not a directory"}},
		{"serve: boot menu kernel missing", []string{"serve", damaged, "--listen", "127.0.0.1:0", "--kernel", filepath.Join(tmp, "vmlinuz"), "--initrd", aFile},
			[]string{"--kernel", "vmlinuz"}},
		{"serve: boot menu without a kernel", []string{"serve", damaged, "--listen", "127.0.0.1:0", "--boot-default", "x"},
			[]string{"--kernel FILE", "boot/vmlinuz"}},
		{"vm: --netboot without a store", []string{"vm", "--netboot"}, []string{"--netboot needs --store"}},
		{"vm: --netboot with a missing kernel", []string{"vm", "--netboot", "--store", damaged, "--kernel", filepath.Join(tmp, "vmlinuz"), "--initrd", aFile},
			[]string{"--kernel", "vmlinuz"}},
		{"serve: boot menu bad --boot-url", []string{"serve", damaged, "--listen", "127.0.0.1:0", "--kernel", aFile, "--initrd", aFile, "--boot-url", "http://h/${x}"},
			[]string{"--boot-url", "${x}"}},
		{"verify: missing store", []string{"verify", filepath.Join(tmp, "nope")}, []string{"nope"}},
		{"verify: store is a file", []string{"verify", aFile}, []string{aFile, "not a directory"}},
		{"info: directory that is not a store", []string{"info", notStore + "/images/x", "--key", publicKey}, []string{notStore, "not a nowhere store"}},
		{"info: missing store directory", []string{"info", tmp + "/nope/images/x", "--key", publicKey}, []string{"nope"}},
		{"info: local latest is a directory", []string{"info", damaged + "/images/dirlatest", "--key", publicKey}, []string{"dirlatest/latest"}},
		{"info: local latest is a FIFO", []string{"info", damaged + "/images/fifolatest", "--key", publicKey}, []string{"fifolatest/latest"}},
		{"mount: latest is a FIFO on the server", []string{"mount", url + "fifolatest", mnt, "--key", publicKey}, []string{"fifolatest/latest"}},
		{"mount: no /images/ in the source", []string{"mount", srv.url + "/ext4", mnt, "--key", publicKey}, []string{"/images/"}},
		{"mount: unsupported scheme", []string{"mount", "ftp://127.0.0.1/images/x", mnt, "--key", publicKey}, []string{"ftp://127.0.0.1", "scheme"}},
		{"mount: unreachable URL", []string{"mount", closed, mnt, "--key", publicKey}, []string{strings.TrimSuffix(closed, "/images/ext4"), "refused"}},
		{"mount: 404 image", []string{"mount", url + "nosuch", mnt, "--key", publicKey}, []string{`"nosuch"`, "not found"}},
		{"mount: 404 version", []string{"mount", url + "erofs/7", mnt, "--key", publicKey}, []string{"7", "not found"}},
		{"mount: truncated index, via latest", []string{"mount", url + "ext4", mnt, "--key", publicKey}, []string{"ext4/1.index", "sha256"}},
		{"mount: truncated index, pinned", []string{"mount", url + "ext4/1", mnt, "--key", publicKey}, []string{"ext4/1.index"}},
		{"mount: garbage index, via latest", []string{"mount", url + "squashfs", mnt, "--key", publicKey}, []string{"squashfs/1.index", "sha256"}},
		{"mount: garbage index, pinned", []string{"mount", url + "squashfs/1", mnt, "--key", publicKey}, []string{"squashfs/1.index"}},
		{"mount: garbage latest pointer", []string{"mount", url + "erofs", mnt, "--key", publicKey}, []string{"erofs/latest"}},
		{"mount --daemon: garbage index", []string{"mount", url + "squashfs/1", mnt, "--daemon", "--key", publicKey}, []string{"squashfs/1.index"}},
		{"info: truncated index, pinned", []string{"info", url + "ext4/1", "--key", publicKey}, []string{"ext4/1.index"}},
		{"extract: garbage index", []string{"extract", url + "squashfs/1", filepath.Join(tmp, "out.img"), "--key", publicKey}, []string{"squashfs/1.index"}},
		// A negative duration would mean "no limit" below the CLI: refused by name, before
		// anything is fetched (the image itself is sound).
		{"extract: negative --timeout", []string{"extract", url + "erofs/1", filepath.Join(tmp, "out.img"), "--key", publicKey, "--timeout", "-1s"},
			[]string{`"--timeout"`, "negative"}},
		{"extract: negative --http-timeout", []string{"extract", url + "erofs/1", filepath.Join(tmp, "out.img"), "--key", publicKey, "--http-timeout", "-1s"},
			[]string{`"--http-timeout"`, "negative"}},
		{"mount: negative --timeout", []string{"mount", url + "erofs/1", mnt, "--key", publicKey, "--timeout", "-1m"},
			[]string{`"--timeout"`, "negative"}},
		{"mount: negative --http-timeout", []string{"mount", url + "erofs/1", mnt, "--key", publicKey, "--http-timeout", "-1m"},
			[]string{`"--http-timeout"`, "negative"}},
		{"gc: negative --grace", []string{"gc", damaged, "--keep", "1", "--grace", "-1h"}, []string{`"--grace"`, "negative"}},
	}
	for _, c := range cases {
		start := time.Now()
		r := runNowhere(t, c.args...)
		assertOneLineError(t, c.name, r, c.wants...)
		// Failing to reach a server is bounded by the open timeout (5 s), not by luck: a
		// generous bound, so a hang fails the test rather than stalling it.
		if el := time.Since(start); el > 30*time.Second {
			t.Errorf("%s: took %s to fail", c.name, el.Round(time.Second))
		}
		if isMounted(t, mnt) {
			t.Fatalf("%s: left %s mounted", c.name, mnt)
		}
	}
	for _, p := range []string{filepath.Join(tmp, "out.img"), newStore + "/images/x"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed command left %s", p)
		}
	}
}

// TestMountWithoutDevFuse runs `nowhere mount` in a private mount namespace where /dev is
// an empty tmpfs: one line naming /dev/fuse, non-zero exit.
func TestMountWithoutDevFuse(t *testing.T) {
	f := getFixture(t)
	srv := startNowhereServe(t, f.store)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	r := runCmdStdin(t, nil, "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs none /dev && exec "$0" mount "$1" "$2" --key "$3"`, nowhereBin, srv.url+"/images/erofs", mnt, publicKey)
	if strings.Contains(r.stderr, "unshare:") || strings.Contains(r.stderr, "mount:") && !strings.Contains(r.stderr, "nowhere:") {
		testutil.Missingf(t, "cannot make a mount namespace without /dev/fuse here: %s", r.stderr)
	}
	assertOneLineError(t, "mount without /dev/fuse", r, "/dev/fuse")
	var st syscall.Stat_t
	if err := syscall.Stat("/dev/fuse", &st); err != nil {
		t.Errorf("the host lost /dev/fuse: %v", err)
	}
}
