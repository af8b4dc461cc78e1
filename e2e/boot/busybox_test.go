package boot

import (
	"crypto/rand"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// guestInit runs in the booted image as PID 1. It reports, one line each, what the guest
// sees: its root (overlay), the overlay's lower layer (a loop device), the loop device's
// backing file (the FUSE file), the root daemon and its FUSE mount (visible only from
// the daemon's own root), a write through the overlay, and the daemon's counters. Then it
// powers off.
const guestInit = `#!/bin/sh
export PATH=/bin
mi=/proc/self/mountinfo
echo "E2E-PID: $$"
echo "E2E-ROOT: $(awk '$5 == "/"' $mi)"
echo "E2E-LOWER: $(awk '$5 == "/run/nowhere/lower"' $mi)"
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
kill -USR1 $pid
sleep 1
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
// The ext4 case configures the network statically and the erofs case boots with the
// image baked into the initramfs and nothing about it on the kernel command line.
func TestBootBusybox(t *testing.T) {
	needEnv(t)
	root := busyboxRoot(t)
	for _, tc := range []struct {
		format string
		ip     string // kernel command line network setting ("" = DHCP)
		baked  bool   // image URL baked into the initramfs instead of the command line
	}{
		{format: "squashfs"},
		{format: "erofs", baked: true},
		{format: "ext4", ip: "10.0.2.15/24,10.0.2.2"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			s := packAndServe(t, makeFS(t, root, tc.format), "bb-"+tc.format)
			url := "http://10.0.2.100/images/" + s.name
			initrd, args := env.initrd, "nowhere.image="+url
			if tc.baked {
				initrd, args = filepath.Join(t.TempDir(), "baked.img"), ""
				run(t, env.bin, "initramfs", "-o", initrd, "--modules", env.modules, "--image", url)
			}
			if tc.ip != "" {
				args += " nowhere.ip=" + tc.ip
			}
			r := boot(t, s, initrd, args, 384, 6*time.Minute, "E2E-MARK-OK")
			c := r.Console
			check := func(what, got string, want ...string) {
				t.Helper()
				for _, w := range want {
					if !strings.Contains(got, w) {
						t.Errorf("%s: %q lacks %q", what, got, w)
					}
				}
			}
			if _, ok := r.Matches["E2E-MARK-OK"]; !ok {
				t.Fatalf("no marker; console:\n%s", tail(c, 80))
			}
			check("root", line(c, "E2E-ROOT:"), " / / ", " - overlay overlay ", "lowerdir=/run/nowhere/lower", "upperdir=/run/nowhere/rw/upper")
			check("lower", line(c, "E2E-LOWER:"), " - "+tc.format+" /dev/loop", " ro")
			check("loop backing file", line(c, "E2E-BACKING:"), "/.nowhere/"+s.name+".img")
			check("loop direct I/O", line(c, "E2E-DIO:"), "1")
			check("daemon", line(c, "E2E-DAEMON:"), "argv0=@nowhere", "oom=-1000")
			check("daemon's FUSE mount", line(c, "E2E-DAEMON-FUSE:"), " /.nowhere ", " - fuse.nowhere "+url)
			check("FUSE hidden from the system", line(c, "E2E-FUSE-IN-OUR-VIEW:"), "0")
			check("overlay write", line(c, "E2E-WRITE:"), "written-through-the-overlay upper=written-through-the-overlay")
			check("init", line(c, "E2E-PID:"), "1")
			if tc.ip != "" {
				check("network", line(c, "nowhere: network:"), "eth0 10.0.2.15/24 by static")
			} else {
				check("network", line(c, "nowhere: network:"), "by dhcp")
			}

			// Fetched on demand: less than the image (the payload is never read).
			st := s.index.Stats()
			counts := s.srv.Counts()
			fetchedPlain := daemonStat(c, "fetched_plain")
			t.Logf("%s: image %d B, chunks stored %d B; served %d chunk bytes in %d requests; daemon fetched %d plain bytes",
				tc.format, s.index.Size, st.StoredBytes, counts.ChunkBytes, counts.ChunkRequests, fetchedPlain)
			if counts.ChunkBytes <= 0 || counts.ChunkBytes >= st.StoredBytes/2 {
				t.Errorf("served %d chunk bytes of %d stored: want some, and less than half", counts.ChunkBytes, st.StoredBytes)
			}
			if fetchedPlain <= 0 || fetchedPlain >= s.index.Size/2 {
				t.Errorf("the daemon fetched %d of %d image bytes: want some, and less than half", fetchedPlain, s.index.Size)
			}
			if strings.Contains(c, "nowhere-root: got") {
				t.Errorf("the root daemon was signalled:\n%s", tail(c, 40))
			}
		})
	}
}
