package boot

import (
	"context"
	"crypto/rand"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// updateInit runs in the booted image as PID 1: it says which image it is, reads the
// whole image through the loop device (so the cache disk ends up holding every chunk of
// it, as a machine that ran it long enough would), prints the root daemon's counters and
// powers off.
const updateInit = `#!/bin/sh
export PATH=/bin
echo "E2E-IMAGE: $(cat /etc/e2e-image)"
dev=$(awk '$5 == "/run/nowhere/lower" { print $(NF-1) }' /proc/self/mountinfo)
cat $dev > /dev/null && echo "E2E-READ-ALL: $dev"
for p in /proc/[0-9]*; do
	[ "$(cat $p/comm 2>/dev/null)" = nowhere-root ] && kill -USR1 ${p#/proc/}
done
sleep 1
echo "E2E-MARK-OK"
poweroff -f
`

// updateRoot is a small root for the update test: busybox, the init above, the image's
// label, and payload files (name -> content).
func updateRoot(t *testing.T, label string, payload map[string][]byte) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc", "payload"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	bb := filepath.Join(root, "bin/busybox")
	run(t, "cp", "-L", "/bin/busybox", bb)
	for _, a := range []string{"sh", "cat", "awk", "echo", "kill", "sleep", "poweroff"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	os.WriteFile(filepath.Join(root, "sbin/init"), []byte(updateInit), 0o755)
	os.WriteFile(filepath.Join(root, "etc/e2e-image"), []byte(label+"\n"), 0o644)
	for name, b := range payload {
		os.WriteFile(filepath.Join(root, "payload", name), b, 0o644)
	}
	return root
}

// chunkSet returns the IDs (hex) of the chunks version v of image name in dir refers to.
func chunkSet(t *testing.T, dir, name string, v uint64) map[string]bool {
	t.Helper()
	s, err := image.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix, _, err := image.Load(context.Background(), s, image.Location{Store: dir, Name: name, Version: v}, store.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ix.Entries {
		if !e.Zero {
			out[e.ID.String()] = true
		}
	}
	return out
}

// fetchedChunks returns the chunk IDs of the chunk GETs in access log lines.
func fetchedChunks(lines []string) map[string]bool {
	out := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l) // method path status bytes
		if f[0] == "GET" && strings.HasPrefix(f[1], "/chunks/") && f[2] == "200" {
			out[strings.TrimSuffix(path.Base(f[1]), ".cacnk")] = true
		}
	}
	return out
}

// TestUpdateWithCacheDisk boots one VM with one cache disk three times, changing only the
// kernel command line's image URL:
//  1. image upd version 1 (the cache disk is empty);
//  2. image upd version 2, published in between (v1 + one new file + a changed label):
//     the server's access log must show that this boot fetched exactly the chunks of v2
//     that v1 lacks (both boots read their whole image, so the cache held all of v1);
//  3. another image, other: it boots from the same cache disk, fetching its own chunks.
func TestUpdateWithCacheDisk(t *testing.T) {
	needEnv(t)
	random := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	payload := map[string][]byte{"base.bin": random(3 << 20), "lib.bin": random(512 << 10)}
	v1 := makeFS(t, updateRoot(t, "upd v1", payload), "squashfs")
	payload["new.bin"] = random(1 << 20)
	v2 := makeFS(t, updateRoot(t, "upd v2", payload), "squashfs")
	other := makeFS(t, updateRoot(t, "other v1", map[string][]byte{"other.bin": random(1 << 20)}), "squashfs")

	dir := filepath.Join(t.TempDir(), "store")
	pack := func(img, name string) {
		run(t, env.bin, "pack", img, "--store", dir, "--name", name, "--progress", "never", "--key", env.secret)
	}
	pack(v1, "upd")
	log := &accessLog{}
	srv, err := vm.ServeWith(dir, "127.0.0.1:0", log.logf, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	s := &served{store: dir, addr: srv.Addr, srv: srv}
	disk := filepath.Join(t.TempDir(), "cache.img")
	run(t, "truncate", "-s", "64M", disk)
	run(t, "mkfs.ext4", "-q", "-F", disk)
	bootImage := func(name, wantLabel string) (console string, lines []string) {
		t.Helper()
		_, from := log.since(0)
		r := boot(t, s, bootOpts{initrd: env.initrd, mem: 384, timeout: 6 * time.Minute, disks: []string{disk},
			args:   "nowhere.image=http://10.0.2.100/images/" + name + " nowhere.cache=/dev/vda nowhere.key=" + env.publicKey,
			expect: []string{"E2E-MARK-OK"}})
		if got := line(r.Console, "E2E-IMAGE:"); got != wantLabel {
			t.Fatalf("booted image says %q, want %q:\n%s", got, wantLabel, tail(r.Console, 60))
		}
		if line(r.Console, "E2E-READ-ALL:") == "" {
			t.Fatalf("the guest could not read its whole image:\n%s", tail(r.Console, 60))
		}
		if got := line(r.Console, "nowhere: cache:"); got != "/dev/vda mounted for chunks" {
			t.Errorf("cache line %q", got)
		}
		lines, _ = log.since(from)
		return r.Console, lines
	}

	_, lines1 := bootImage("upd", "upd v1")
	fetched1 := fetchedChunks(lines1)
	set1 := chunkSet(t, dir, "upd", 1)
	if len(fetched1) != len(set1) {
		t.Errorf("boot 1 read the whole image but fetched %d of its %d chunks", len(fetched1), len(set1))
	}

	pack(v2, "upd")
	set2 := chunkSet(t, dir, "upd", 2)
	lacked := map[string]bool{} // chunks of v2 that v1 lacks
	for id := range set2 {
		if !set1[id] {
			lacked[id] = true
		}
	}
	console2, lines2 := bootImage("upd", "upd v2")
	if !strings.Contains(console2, "serves upd version 2") {
		t.Errorf("boot 2 did not serve version 2:\n%s", tail(console2, 60))
	}
	fetched2 := fetchedChunks(lines2)
	var again, missing []string
	var bytes2 int64
	for id := range fetched2 {
		if !lacked[id] {
			again = append(again, id)
		}
	}
	for id := range lacked {
		if !fetched2[id] {
			missing = append(missing, id)
		}
	}
	for _, l := range lines2 {
		if f := strings.Fields(l); strings.HasPrefix(f[1], "/chunks/") {
			var n int64
			for _, c := range f[3] {
				n = n*10 + int64(c-'0')
			}
			bytes2 += n
		}
	}
	t.Logf("v1 %d chunks, v2 %d chunks, %d of them new; boot 1 fetched %d chunks, boot 2 fetched %d chunks (%d bytes)",
		len(set1), len(set2), len(lacked), len(fetched1), len(fetched2), bytes2)
	// v2 adds a 1 MiB file and changes a label: most of it is v1's.
	if len(lacked) == 0 || len(lacked)*2 >= len(set2) {
		t.Fatalf("v2 shares nothing or too little with v1 (%d of %d chunks new): the test images are wrong", len(lacked), len(set2))
	}
	if len(again) > 0 {
		t.Errorf("boot 2 fetched %d chunks v1 already had (the cache disk should have served them): %v", len(again), again)
	}
	if len(missing) > 0 {
		t.Errorf("boot 2 read all of v2 but never fetched %d of the chunks v1 lacks: %v", len(missing), missing)
	}

	pack(other, "other")
	console3, lines3 := bootImage("other", "other v1")
	if !regexp.MustCompile(`root daemon pid \d+ serves other version 1`).MatchString(console3) {
		t.Errorf("boot 3 did not boot image other:\n%s", tail(console3, 60))
	}
	fetched3 := fetchedChunks(lines3)
	set3 := chunkSet(t, dir, "other", 1)
	for id := range fetched3 {
		if !set3[id] {
			t.Errorf("boot 3 fetched chunk %s, which image other does not have", id)
		}
	}
	if len(fetched3) == 0 {
		t.Errorf("boot 3 fetched no chunk of image other")
	}
}
