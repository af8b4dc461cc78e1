package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/profile"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// The container-boot tests boot a small root made of the host's own systemd: its
// /usr/lib/systemd/systemd (and systemd-shutdown, so the container halts when asked), the
// libraries ldd names, the unit files of the targets and slices, os-release, a passwd.
// It reaches multi-user.target in half a second; a debootstrapped Debian root would do
// the same in 1.5 s but costs minutes to build. Beside it, /usr/share/ballast: a file
// nothing in a boot reads, which must stay out of the profile (the loop device reads the
// FUSE file with direct I/O, as a real boot's does, so the FUSE file's read-ahead does not
// sweep it in; the loop device's own read-ahead of metadata could touch its edge).
const ballastSize = 8 << 20

var systemdRoot struct {
	once       sync.Once
	image, err string // an ext4 image of the root
}

// systemdImage returns the ext4 image of the small systemd root, built once per run.
func systemdImage(t *testing.T) string {
	t.Helper()
	needRoot(t)
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		testutil.Missing(t, "systemd-nspawn is missing (Debian package systemd-container; scripts/install-deps.sh test installs it)")
	}
	if _, err := os.Stat("/usr/lib/systemd/systemd"); err != nil {
		testutil.Missing(t, "the host has no /usr/lib/systemd/systemd to build a small systemd root from")
	}
	systemdRoot.once.Do(func() {
		dir := filepath.Join(workDir, "systemd-root")
		if err := buildSystemdRoot(dir); err != nil {
			systemdRoot.err = err.Error()
			return
		}
		img := filepath.Join(workDir, "systemd-root.ext4")
		r := runNowhere(t, "pack", "--from-dir", dir, "--fs", "ext4", "--save-image", img,
			"--store", filepath.Join(workDir, "systemd-root-store"), "--name", "systemd-root", "--progress", "never")
		if r.code != 0 {
			systemdRoot.err = "building the image: " + r.stderr
			return
		}
		systemdRoot.image = img
	})
	if systemdRoot.err != "" {
		t.Fatal(systemdRoot.err)
	}
	return systemdRoot.image
}

func buildSystemdRoot(root string) error {
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib/systemd/system", "usr/lib64", "usr/share/ballast", "etc", "proc", "sys", "dev", "run", "tmp", "var", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} { // merged /usr, as Debian 12
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755); err != nil {
		return err
	}
	bins := []string{"/usr/lib/systemd/systemd", "/usr/lib/systemd/systemd-shutdown"}
	libs := map[string]bool{}
	lddPath := regexp.MustCompile(`(?m)(?:=> |^\s*)(/\S+)`)
	for _, b := range bins {
		out, err := exec.Command("ldd", b).Output()
		if err != nil {
			return fmt.Errorf("ldd %s: %v", b, err)
		}
		for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
			libs[m[1]] = true
		}
	}
	copyTo := func(src string) error {
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		dst := filepath.Join(root, src) // /lib/... lands in usr/lib through the root's own symlink
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o755)
	}
	for _, b := range bins {
		if err := copyTo(b); err != nil {
			return err
		}
	}
	for l := range libs {
		if err := copyTo(l); err != nil {
			return err
		}
	}
	units, _ := filepath.Glob("/usr/lib/systemd/system/*.target")
	slices, _ := filepath.Glob("/usr/lib/systemd/system/*.slice")
	for _, u := range append(units, slices...) {
		if st, err := os.Lstat(u); err != nil || !st.Mode().IsRegular() {
			continue // aliases (default.target -> graphical.target) would point outside
		}
		if err := copyTo(u); err != nil {
			return err
		}
	}
	if err := os.Symlink("multi-user.target", filepath.Join(root, "usr/lib/systemd/system/default.target")); err != nil {
		return err
	}
	ballast := make([]byte, ballastSize)
	rand.Read(ballast)
	files := map[string]string{
		"usr/lib/os-release":       "ID=nowhere-test\nNAME=\"a small systemd root\"\n",
		"etc/passwd":               "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":                "root:x:0:\n",
		"etc/machine-id":           "",
		"usr/share/ballast/unread": string(ballast),
	}
	for p, s := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// fileEntries returns the entries of ix that hold path's data blocks in the ext4 image.
func fileEntries(t *testing.T, img string, ix *index.Index, path string) map[int]bool {
	t.Helper()
	bs := 0
	for _, l := range strings.Split(mustRun(t, "dumpe2fs", "-h", img), "\n") {
		if v, ok := strings.CutPrefix(l, "Block size:"); ok {
			bs, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if bs == 0 {
		t.Fatalf("dumpe2fs -h %s: no block size", img)
	}
	out := mustRun(t, "debugfs", "-R", "blocks "+path, img)
	entries := map[int]bool{}
	for _, f := range strings.Fields(out) {
		b, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			continue // debugfs's banner
		}
		entries[ix.Find(b*int64(bs))] = true
	}
	if len(entries) == 0 {
		t.Fatalf("debugfs: no blocks for %s in %s: %q", path, img, out)
	}
	return entries
}

// noLeftovers checks that nothing a container boot set up is left: no FUSE mount, no
// loop-mounted root, no loop device, no temporary directory.
func noLeftovers(t *testing.T) {
	t.Helper()
	if mi := readFile("/proc/self/mountinfo"); strings.Contains(mi, "nowhere-bootprofile") {
		t.Errorf("mounts left behind:\n%s", mi)
	}
	if out, _ := exec.Command("losetup", "-a").Output(); bytes.Contains(out, []byte("nowhere-bootprofile")) {
		t.Errorf("loop devices left behind:\n%s", out)
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "nowhere-bootprofile-*")); len(left) > 0 {
		t.Errorf("temporary directories left behind: %v", left)
	}
}

// TestPackProfileBootRecordsAContainerBoot packs the small systemd root with
// --profile-boot: a real systemd-nspawn boot of the image over a real FUSE file and loop
// mount. The signed index must carry a one-boot profile holding every chunk of
// /usr/lib/systemd/systemd's blocks (the container's first exec) and (almost) none of the
// ballast nobody reads; nothing may be left mounted; a mount of it must prefetch the profile's
// chunks first, in order, before anything reads. Then `profile record --container` boots
// the published image from the store and `profile apply` publishes what it recorded.
func TestPackProfileBootRecordsAContainerBoot(t *testing.T) {
	img := systemdImage(t)
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	start := time.Now()
	r := mustNowhere(t, "pack", img, "--store", st, "--name", "nspawn-root", "--sign-key", secretKey, "--progress", "never", "--profile-boot")
	t.Logf("pack --profile-boot: %.1f s\n%s%s", time.Since(start).Seconds(), r.stdout, r.stderr)
	for _, want := range []string{"booting the ext4 image in systemd-nspawn until multi-user.target", "reached multi-user.target in", "container stopped in"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	ix := loadIndex(t, st, "nspawn-root", 1)
	if len(ix.Profile.Entries) == 0 || ix.Profile.Boots != 1 {
		t.Fatalf("index: profile of %d entries from %d boots, want a non-empty one from 1", len(ix.Profile.Entries), ix.Profile.Boots)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("profile: %d chunks from 1 boot", len(ix.Profile.Entries))) {
		t.Errorf("stdout does not report the profile:\n%s", r.stdout)
	}
	inProfile := map[int]bool{}
	for _, e := range ix.Profile.Entries { // index.Decode checked they are entries of this image
		inProfile[e] = true
	}
	for e := range fileEntries(t, img, ix, "/usr/lib/systemd/systemd") {
		if !inProfile[e] {
			t.Errorf("entry %d (holding /usr/lib/systemd/systemd) is not in the profile", e)
		}
	}
	var ballastIn int64
	for e := range fileEntries(t, img, ix, "/usr/share/ballast/unread") {
		if inProfile[e] {
			ballastIn += int64(ix.Entries[e].Len)
		}
	}
	t.Logf("of the %d MiB ballast no boot reads, %d KiB is in the profile", ballastSize>>20, ballastIn>>10)
	if ballastIn > 256<<10 { // without direct I/O on the loop device it was 1072 KiB
		t.Errorf("%d KiB of the %d MiB ballast no boot reads is in the profile", ballastIn>>10, ballastSize>>20)
	}
	noLeftovers(t)
	info := mustNowhere(t, "info", st+"/images/nspawn-root", "--key", publicKey).stdout
	if !strings.Contains(info, fmt.Sprintf("profile:   %d chunks", len(ix.Profile.Entries))) || !strings.Contains(info, "verified") {
		t.Errorf("info:\n%s", info)
	}

	// A mount prefetches the profile first: one at a time, in the profile's order, before
	// anything reads the image.
	srv := startGatedServer(t, st, nil)
	m := mountDaemon(t, srv.url+"/images/nspawn-root", "nspawn-root", "--prefetch", "1", "--readahead", "0")
	chunkRequests := func() (paths []string) {
		for _, a := range srv.accesses() {
			if !a.done && strings.HasPrefix(a.path, "/chunks/") {
				paths = append(paths, a.path)
			}
		}
		return paths
	}
	if !waitFor(cmdTimeout, func() bool { return len(chunkRequests()) >= len(ix.Profile.Entries) }) {
		t.Fatalf("the mount prefetched %d of the profile's %d chunks\nstatus: %s", len(chunkRequests()), len(ix.Profile.Entries), readFile(filepath.Join(m.dir, ".status")))
	}
	got := chunkRequests()
	for k, e := range ix.Profile.Entries {
		if want := chunkURLPath(ix.Entries[e]); got[k] != want {
			t.Fatalf("chunk request %d is %s, want the profile's entry %d (%s)", k, got[k], e, want)
		}
	}
	m.unmount(t)

	// The same from the published image, fetched from the store.
	prof := filepath.Join(dir, "container.profile")
	r = mustNowhere(t, "profile", "record", "--container", st+"/images/nspawn-root", "--key", publicKey, "-o", prof)
	if !strings.Contains(r.stdout, "recorded ") || !strings.Contains(r.stderr, "reached multi-user.target") {
		t.Fatalf("record --container:\n%s%s", r.stdout, r.stderr)
	}
	f, err := os.Open(prof)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := profile.ParseTrace(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[chunk.ID]bool{}
	for _, it := range tr.Items {
		recorded[it.ID] = true
	}
	for e := range fileEntries(t, img, ix, "/usr/lib/systemd/systemd") {
		if !recorded[ix.Entries[e].ID] {
			t.Errorf("record --container: entry %d (holding /usr/lib/systemd/systemd) not recorded", e)
		}
	}
	noLeftovers(t)
	r = mustNowhere(t, "profile", "apply", st+"/images/nspawn-root", prof, "--sign-key", secretKey)
	if !strings.Contains(r.stdout, "published nspawn-root version 2: version 1 with a profile of") {
		t.Fatalf("apply: %s", r.stdout)
	}
	if ix2 := loadIndex(t, st, "nspawn-root", 2); len(ix2.Profile.Entries) != len(tr.Items) {
		t.Errorf("version 2: profile of %d entries, recorded %d", len(ix2.Profile.Entries), len(tr.Items))
	}

	// A recorded profile and the container boot merge: two boots.
	r = mustNowhere(t, "pack", img, "--store", st, "--name", "nspawn-merged", "--sign-key", secretKey, "--progress", "never", "--profile", prof, "--profile-boot")
	if ix3 := loadIndex(t, st, "nspawn-merged", 1); ix3.Profile.Boots != 2 || len(ix3.Profile.Entries) < len(tr.Items) {
		t.Errorf("--profile and --profile-boot: profile of %d entries from %d boots, want at least %d from 2\n%s", len(ix3.Profile.Entries), ix3.Profile.Boots, len(tr.Items), r.stdout)
	}
}

// runNowhereEnv is runNowhere with a changed environment (KEY=VALUE, replacing).
func runNowhereEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nowhereBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("nowhere %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// TestPackProfileBootRefusals: when the container boot cannot happen (an image without
// systemd; no systemd-nspawn on the PATH), pack says why in one line, exits 0 and
// publishes the image without a profile. record --container, which has nothing else to
// do, fails with that line.
func TestPackProfileBootRefusals(t *testing.T) {
	img := systemdImage(t)
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	oneLine := func(what string, r result, wants ...string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 0 || len(lines) != 1 {
			t.Fatalf("%s: exit %d, %d lines on stderr, want 0 and one:\n%s", what, r.code, len(lines), r.stderr)
		}
		for _, w := range wants {
			if !strings.Contains(lines[0], w) {
				t.Errorf("%s: %q does not say %q", what, lines[0], w)
			}
		}
		if strings.Contains(r.stdout, "profile:") {
			t.Errorf("%s: stdout reports a profile:\n%s", what, r.stdout)
		}
	}

	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc/os-release"), []byte("ID=none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runNowhere(t, "pack", "--from-dir", tree, "--fs", "ext4", "--store", st, "--name", "no-systemd", "--sign-key", secretKey, "--progress", "never", "--profile-boot")
	oneLine("an image without systemd", r, "nowhere: --profile-boot:", "no systemd", "publishing without a boot profile")
	if ix := loadIndex(t, st, "no-systemd", 1); len(ix.Profile.Entries) != 0 {
		t.Errorf("an image without systemd was published with a profile of %d entries", len(ix.Profile.Entries))
	}

	// The systemd root, but systemd-nspawn not on the PATH.
	empty := filepath.Join(dir, "bin")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	r = runNowhereEnv(t, []string{"PATH=" + empty}, "pack", img, "--store", st, "--name", "no-nspawn", "--sign-key", secretKey, "--progress", "never", "--profile-boot")
	oneLine("no systemd-nspawn", r, "systemd-nspawn not found", "systemd-container", "publishing without a boot profile")
	if ix := loadIndex(t, st, "no-nspawn", 1); len(ix.Profile.Entries) != 0 {
		t.Errorf("published with a profile of %d entries without systemd-nspawn", len(ix.Profile.Entries))
	}
	r = runNowhereEnv(t, []string{"PATH=" + empty}, "profile", "record", "--container", st+"/images/no-nspawn", "--key", publicKey, "-o", filepath.Join(dir, "p"))
	assertOneLineError(t, "record --container without systemd-nspawn", r, "systemd-nspawn not found", "systemd-container")
	noLeftovers(t)
}
