package boot

import (
	"cmp"
	"crypto/rand"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
)

// guestInit runs in the booted image as PID 1. It reports, one line each, what the guest
// sees: which init the boot ran ($0: the image holds this script as /sbin/init, the
// default, and as /bin/e2e-init, for init=), its root (overlay), the overlay's lower
// layer (a loop device) and writable layer (a tmpfs, or a disk with nowhere.overlay=),
// the loop device's backing file (the FUSE file), the root daemon and its FUSE mount
// (visible only from the daemon's own root), a write through the overlay, how many boots
// have written to the root (1 unless the writable layer kept an earlier boot's writes),
// and the daemon's counters. Then it flushes the writes and powers off.
const guestInit = `#!/bin/sh
export PATH=/bin
mi=/proc/self/mountinfo
echo "E2E-PID: $$"
echo "E2E-INIT: $0"
echo "E2E-ROOT: $(awk '$5 == "/"' $mi)"
echo "E2E-LOWER: $(awk '$5 == "/run/nowhere/lower"' $mi)"
echo "E2E-RW: $(awk '$5 == "/run/nowhere/rw"' $mi)"
dev=$(awk '$5 == "/run/nowhere/lower" { print $(NF-1) }' $mi)
dev=${dev#/dev/}
echo "E2E-BACKING: $(cat /sys/block/$dev/loop/backing_file)"
echo "E2E-DIO: $(cat /sys/block/$dev/loop/dio)"
pid=
for p in /proc/[0-9]*; do
	[ "$(cat $p/comm 2>/dev/null)" = nowhere-root ] && pid=${p#/proc/}
done
echo "E2E-DAEMON: pid=$pid argv0=$(tr '\0' '\n' < /proc/$pid/cmdline | head -n 1) oom=$(cat /proc/$pid/oom_score_adj)"
echo "E2E-DAEMON-FUSE: $(awk '$5 == "/.nowhere"' /proc/$pid/mountinfo)"
echo "E2E-FUSE-IN-OUR-VIEW: $(grep -c fuse $mi)"
echo written-through-the-overlay > /e2e-write
echo "E2E-WRITE: $(cat /e2e-write) upper=$(cat /run/nowhere/rw/upper/e2e-write)"
n=$(cat /e2e-boots 2>/dev/null)
n=$((${n:-0} + 1))
echo $n > /e2e-boots
echo "E2E-BOOTS: $n"
kill -USR1 $pid
sleep 1
sync
echo "E2E-MARK-OK"
poweroff -f
`

// busyboxRoot builds a small root: static busybox, the init above, and a 12 MiB file of
// random bytes that nothing reads (so fetching on demand must fetch less than the image).
func busyboxRoot(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox is not installed (scripts/install-deps.sh test installs busybox-static)")
	}
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc", "payload"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	run(t, "cp", "-L", bb, filepath.Join(root, "bin/busybox"))
	if f, err := elf.Open(filepath.Join(root, "bin/busybox")); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatalf("%s is dynamically linked (install busybox-static)", bb)
			}
		}
		f.Close()
	}
	for _, a := range strings.Fields(run(t, bb, "--list")) {
		if a != "busybox" {
			os.Symlink("busybox", filepath.Join(root, "bin", a))
		}
	}
	os.WriteFile(filepath.Join(root, "sbin/init"), []byte(guestInit), 0o755)
	os.WriteFile(filepath.Join(root, "bin/e2e-init"), []byte(guestInit), 0o755) // for init=
	payload := make([]byte, 12<<20)
	rand.Read(payload)
	os.WriteFile(filepath.Join(root, "payload/unread.bin"), payload, 0o644)
	return root
}

func makeFS(t *testing.T, root, format string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "root."+format)
	switch format {
	case "squashfs":
		run(t, "mksquashfs", root, img, "-quiet", "-noappend", "-comp", "zstd", "-all-root")
	case "erofs":
		run(t, "mkfs.erofs", "-zlz4hc", "--all-root", img, root)
	case "ext4":
		run(t, "mkfs.ext4", "-q", "-E", "root_owner=0:0", "-d", root, img, "48M")
	}
	return img
}

// TestBootBusybox boots a small root in each image format, over the whole data path:
// HTTP -> root daemon -> FUSE file -> loop device -> squashfs/erofs/ext4 -> overlay.
// Each format also exercises one more part of the boot:
//   - squashfs: through an HTTP proxy (nowhere.proxy=): the guest reaches nothing but the
//     proxy, and the image's URL names a host only the proxy knows. The server behind it
//     is down when the guest first asks; it starts only once the root daemon has said it
//     cannot fetch the index, and the boot goes on by itself;
//   - erofs: the image URL, two mirrors and the publisher's key are baked into a zstd
//     initramfs and the kernel command line says nothing about them; the image's own
//     store answers 404, the first mirror serves corrupted chunks (and no index), so the
//     index and the chunks come from the other mirror, and the root daemon says it
//     demoted the corrupt one;
//   - ext4: a static address, another init (init=), a cache disk and an overlay disk
//     (nowhere.overlay=): a second boot from the same disks fetches (almost) nothing
//     and finds the first boot's writes in its root.
//
// Every image is signed; squashfs and ext4 get the publisher's key on the kernel command
// line (nowhere.key=), erofs from the initramfs.
func TestBootBusybox(t *testing.T) {
	needEnv(t)
	root := busyboxRoot(t)
	key := " nowhere.key=" + env.publicKey
	t.Run("squashfs", func(t *testing.T) {
		s := pack(t, makeFS(t, root, "squashfs"), "bb-squashfs")
		proxy := startProxy(t, originHost, s.addr)
		var started atomic.Bool
		r := boot(t, s, bootOpts{initrd: env.initrd, args: "nowhere.image=http://" + originHost + "/images/bb-squashfs nowhere.proxy=http://10.0.2.100" + key,
			relay: proxy.addr, mem: 384, timeout: 6 * time.Minute, expect: []string{"cannot fetch the index", "E2E-MARK-OK"},
			onMatch: func(re *regexp.Regexp, _ time.Duration) {
				if re.String() == "cannot fetch the index" && !started.Swap(true) {
					s.start(t)
				}
			}})
		if !started.Load() {
			t.Fatalf("the root daemon never said it could not fetch the index:\n%s", tail(r.Console, 60))
		}
		checkGuest(t, r, s, guest{format: "squashfs", ip: "dhcp"})
		checkProxied(t, r, s, proxy)
	})
	t.Run("erofs", func(t *testing.T) {
		s := packAndServe(t, makeFS(t, root, "erofs"), "bb-erofs")
		corruptMirror(t, s.store, "corrupt")
		initrd := filepath.Join(t.TempDir(), "baked.img")
		run(t, env.bin, "initramfs", "-o", initrd, "--modules", env.modules, "--compress", "zstd",
			"--image", "http://10.0.2.100/missing/images/bb-erofs",
			"--mirror", "http://10.0.2.100/corrupt", "--mirror", "http://10.0.2.100", "--key", env.public)
		r := boot(t, s, bootOpts{initrd: initrd, mem: 384, timeout: 6 * time.Minute, expect: []string{"E2E-MARK-OK"}})
		checkGuest(t, r, s, guest{format: "erofs", ip: "dhcp"})
		if got := line(r.Console, "nowhere: root daemon pid"); !strings.HasSuffix(got, "from http://10.0.2.100") {
			t.Errorf("daemon line %q: want the mirror http://10.0.2.100 to serve", got)
		}
		if got := line(r.Console, "nowhere: trusting publisher keys"); got == "" {
			t.Errorf("/init did not say it trusts the baked key:\n%s", tail(r.Console, 60))
		}
		demoted := regexp.MustCompile(`nowhere-root: mirror http://10\.0\.2\.100/corrupt served a corrupt chunk [0-9a-f]{64}: .*demoted hard`)
		if !demoted.MatchString(r.Console) {
			t.Errorf("the root daemon did not log the demotion of the corrupt mirror:\n%s", tail(r.Console, 80))
		}
	})
	t.Run("ext4", func(t *testing.T) {
		s := packAndServe(t, makeFS(t, root, "ext4"), "bb-ext4")
		dir := t.TempDir()
		cache, upper := filepath.Join(dir, "cache.img"), filepath.Join(dir, "overlay.img")
		for _, disk := range []string{cache, upper} {
			run(t, "truncate", "-s", "64M", disk)
			run(t, "mkfs.ext4", "-q", "-F", disk)
		}
		o := bootOpts{initrd: env.initrd, args: "nowhere.image=http://10.0.2.100/images/bb-ext4 nowhere.ip=10.0.2.15/24,10.0.2.2" +
			" nowhere.cache=/dev/vda nowhere.overlay=/dev/vdb init=/bin/e2e-init" + key,
			mem: 384, timeout: 6 * time.Minute, expect: []string{"E2E-MARK-OK"}, disks: []string{cache, upper}}
		r := boot(t, s, o)
		checkGuest(t, r, s, guest{format: "ext4", ip: "static", init: "/bin/e2e-init", rw: "/dev/vdb"})
		if got := line(r.Console, "nowhere: cache:"); got != "/dev/vda mounted for chunks" {
			t.Errorf("cache line %q", got)
		}
		cold := s.counts().ChunkBytes
		r = boot(t, s, o)
		warm := s.counts().ChunkBytes - cold
		t.Logf("cache disk: first boot fetched %d chunk bytes, second boot %d", cold, warm)
		if _, ok := r.Matches["E2E-MARK-OK"]; !ok || warm*4 > cold {
			t.Errorf("second boot with a warm cache fetched %d chunk bytes (first boot %d): want under a quarter", warm, cold)
		}
		// The overlay disk kept the first boot's writes: the second boot counts two.
		if got := line(r.Console, "E2E-BOOTS:"); got != "2" {
			t.Errorf("second boot from the overlay disk says it is boot %q, want 2 (the first boot's writes lost?):\n%s", got, tail(r.Console, 60))
		}
		if got := line(r.Console, "E2E-INIT:"); got != "/bin/e2e-init" {
			t.Errorf("second boot ran init %q, want /bin/e2e-init", got)
		}
		// And the writes are on that disk, in the overlay's upper directory, seen from the host.
		if out, err := exec.Command("e2fsck", "-fy", upper).CombinedOutput(); err != nil {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 { // 1: fixed (the journal replayed)
				t.Fatalf("e2fsck %s: %v\n%s", upper, err, out)
			}
		}
		out, err := exec.Command("debugfs", "-R", "cat /upper/e2e-boots", upper).Output() // the file on stdout
		if got := strings.TrimSpace(string(out)); err != nil || got != "2" {
			t.Errorf("the overlay disk holds /upper/e2e-boots = %q (debugfs: %v), want 2", got, err)
		}
	})
}

// originHost is the host name of the store in the image URL of the boot through the
// proxy: only the proxy knows it (.invalid never resolves), so a guest that reaches the
// image at all reached it through the proxy.
const originHost = "origin.invalid"

// checkProxied checks that a boot's requests went through the proxy: /init took
// nowhere.proxy=, the proxy forwarded the index and every chunk the store served, and
// it was asked for nothing else.
func checkProxied(t *testing.T, r vm.Result, s *served, p *forwardProxy) {
	t.Helper()
	if got := line(r.Console, "nowhere: image "); !strings.HasSuffix(got, ", proxy http://10.0.2.100") {
		t.Errorf("/init's configuration line %q does not name the proxy", got)
	}
	index, refused := p.requests("/images/" + s.name + "/")
	chunks, _ := p.requests("/chunks/")
	stored := s.counts().ChunkRequests
	t.Logf("the proxy forwarded %d index requests and %d chunk requests; the store served %d chunk requests", len(index), len(chunks), stored)
	if len(index) == 0 {
		t.Errorf("the proxy forwarded no request for the index")
	}
	if len(chunks) == 0 || int64(len(chunks)) < stored {
		t.Errorf("the proxy forwarded %d chunk requests, the store served %d: want every one through the proxy", len(chunks), stored)
	}
	if len(refused) > 0 {
		t.Errorf("the proxy was sent requests that were not proxy requests for %s: %v", originHost, refused)
	}
}

// corruptMirror makes the store's directory also serve, under /NAME/, a mirror that
// has every chunk with one byte flipped (and no images: its index requests fail over).
func corruptMirror(t *testing.T, storeDir, name string) {
	t.Helper()
	src := filepath.Join(storeDir, "chunks")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0xa5
		rel, _ := filepath.Rel(storeDir, p)
		dst := filepath.Join(storeDir, name, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// guest is what a boot's guest init should report besides the common facts.
type guest struct {
	format, ip string // the image's filesystem; the address: "dhcp" or "static"
	init       string // the init that ran ("": /sbin/init, the default)
	rw         string // the disk of the overlay's writable layer ("": a tmpfs)
}

// checkGuest checks what the guest init reported about its root on a first boot.
func checkGuest(t *testing.T, r vm.Result, s *served, g guest) {
	t.Helper()
	format := g.format
	c := r.Console
	if _, ok := r.Matches["E2E-MARK-OK"]; !ok {
		t.Fatalf("no marker; console:\n%s", tail(c, 80))
	}
	check := func(what, got string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", what, got, w)
			}
		}
	}
	url, _, _ := strings.Cut(line(c, "nowhere: image "), ",") // "URL, mirrors [...], ..."
	check("root", line(c, "E2E-ROOT:"), " / / ", " - overlay overlay ", "lowerdir=/run/nowhere/lower", "upperdir=/run/nowhere/rw/upper")
	check("lower", line(c, "E2E-LOWER:"), " - "+format+" /dev/loop", " ro")
	check("loop backing file", line(c, "E2E-BACKING:"), "/.nowhere/"+s.name+".img")
	check("loop direct I/O", line(c, "E2E-DIO:"), "1")
	check("daemon", line(c, "E2E-DAEMON:"), "argv0=@nowhere", "oom=-1000")
	check("daemon's FUSE mount", line(c, "E2E-DAEMON-FUSE:"), " /.nowhere ", " - fuse.nowhere "+url+" ")
	check("FUSE hidden from the system", line(c, "E2E-FUSE-IN-OUR-VIEW:"), "0")
	check("overlay write", line(c, "E2E-WRITE:"), "written-through-the-overlay upper=written-through-the-overlay")
	check("init", line(c, "E2E-PID:"), "1")
	check("network", line(c, "nowhere: network:"), "eth0 10.0.2.15/24 by "+g.ip)
	init := cmp.Or(g.init, "/sbin/init")
	check("init /init ran", line(c, "nowhere: switch_root: exec "), init+" (")
	check("init that runs", line(c, "E2E-INIT:"), init)
	if g.rw == "" {
		check("overlay's writable layer", line(c, "E2E-RW:"), " /run/nowhere/rw ", " - tmpfs tmpfs ")
		check("/init's overlay line", line(c, "nowhere: root: overlay of "), "a tmpfs for writes")
	} else {
		check("overlay's writable layer", line(c, "E2E-RW:"), " /run/nowhere/rw ", " - ext4 "+g.rw+" rw")
		check("/init's overlay line", line(c, "nowhere: root: overlay of "), g.rw+" for writes")
	}
	check("boots that wrote to the root", line(c, "E2E-BOOTS:"), "1")

	// Fetched on demand: less than the image (the payload is never read).
	st := s.index.Stats()
	counts := s.counts()
	fetchedPlain := daemonStat(c, "fetched_plain")
	t.Logf("%s: image %d B, chunks stored %d B; served %d chunk bytes in %d requests; daemon fetched %d plain bytes",
		format, s.index.Size, st.StoredBytes, counts.ChunkBytes, counts.ChunkRequests, fetchedPlain)
	if counts.ChunkBytes <= 0 || counts.ChunkBytes >= st.StoredBytes/2 {
		t.Errorf("served %d chunk bytes of %d stored: want some, and less than half", counts.ChunkBytes, st.StoredBytes)
	}
	if fetchedPlain <= 0 || fetchedPlain >= s.index.Size/2 {
		t.Errorf("the daemon fetched %d of %d image bytes: want some, and less than half", fetchedPlain, s.index.Size)
	}
	if strings.Contains(c, "nowhere-root: got") {
		t.Errorf("the root daemon was signalled:\n%s", tail(c, 40))
	}
}
