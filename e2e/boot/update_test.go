package boot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
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
// it, as a machine that ran it long enough would) and prints its SHA-256, prints the root
// daemon's counters and powers off.
const updateInit = `#!/bin/sh
export PATH=/bin
echo "E2E-IMAGE: $(cat /etc/e2e-image)"
dev=$(awk '$5 == "/run/nowhere/lower" { print $(NF-1) }' /proc/self/mountinfo)
sum=$(sha256sum < $dev) && echo "E2E-READ-ALL: $dev ${sum%% *}"
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
	for _, a := range []string{"sh", "cat", "awk", "echo", "kill", "sleep", "poweroff", "sha256sum"} {
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

// TestUpdateWithCacheDisk boots one VM with one cache disk four times, changing only the
// kernel command line's image URL (and, last, taking the server away):
//  1. image upd version 1 (the cache disk is empty);
//  2. image upd version 2, published in between (v1 + one new file + a changed label):
//     the server's access log must show that this boot fetched exactly the chunks of v2
//     that v1 lacks (both boots read their whole image, so the cache held all of v1);
//  3. another image, other: it boots from the same cache disk, fetching its own chunks;
//  4. image upd again with every mirror gone (the server stopped, its port closed): the
//     cache disk alone boots v2, index and pointer included, and the guest reads all of it.
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
		run(t, env.bin, "pack", img, "--store", dir, "--name", name, "--progress", "never", "--sign-key", env.secret)
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
	// bootImage boots image name from the cache disk and checks that the guest ran the
	// image labelled wantLabel and read all of it, with the bytes of the file img.
	// relayCmd, when set, is what qemu runs for each guest connection instead of the relay
	// to the server.
	bootImage := func(name, wantLabel, img string, relayCmd []string) (console string, lines []string) {
		t.Helper()
		_, from := log.since(0)
		r := boot(t, s, bootOpts{initrd: env.initrd, mem: 384, timeout: 8 * time.Minute, disks: []string{disk}, relayCmd: relayCmd,
			args:   "nowhere.image=http://10.0.2.100/images/" + name + " nowhere.cache=/dev/vda nowhere.key=" + env.publicKey,
			expect: []string{"E2E-MARK-OK"}})
		if got := line(r.Console, "E2E-IMAGE:"); got != wantLabel {
			t.Fatalf("booted image says %q, want %q:\n%s", got, wantLabel, tail(r.Console, 60))
		}
		read := strings.Fields(line(r.Console, "E2E-READ-ALL:")) // device, SHA-256
		if len(read) != 2 {
			t.Fatalf("the guest could not read its whole image:\n%s", tail(r.Console, 60))
		}
		if want := fileSHA256(t, img); read[1] != want {
			t.Errorf("the guest read its image %s with SHA-256 %s, want %s (the packed file's)", read[0], read[1], want)
		}
		if got := line(r.Console, "nowhere: cache:"); got != "/dev/vda mounted for chunks" {
			t.Errorf("cache line %q", got)
		}
		lines, _ = log.since(from)
		return r.Console, lines
	}

	_, lines1 := bootImage("upd", "upd v1", v1, nil)
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
	console2, lines2 := bootImage("upd", "upd v2", v2, nil)
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
	console3, lines3 := bootImage("other", "other v1", other, nil)
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

	// Boot 4: every mirror gone. The server stops and its port is closed; the guest's
	// connections to 10.0.2.100 go through a relay that notes each attempt and how it
	// ended. The cache disk alone must boot image upd again: its latest pointer and index
	// (checked against the key and the rollback memory on the same disk) and every chunk.
	before := srv.Counts()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	refused := func(when string) {
		t.Helper()
		if c, err := net.DialTimeout("tcp", srv.Addr, 2*time.Second); err == nil {
			c.Close()
			t.Fatalf("%s: something answers on the stopped server's address %s", when, srv.Addr)
		}
	}
	refused("before the offline boot")
	relayCmd, attempts := loggingRelay(t, srv.Addr)
	console4, lines4 := bootImage("upd", "upd v2", v2, relayCmd)
	refused("after the offline boot")
	if len(lines4) > 0 || srv.Counts() != before {
		t.Errorf("the stopped server answered during the offline boot: %d requests logged", len(lines4))
	}
	tries := attempts()
	t.Logf("offline boot: the guest's connections to 10.0.2.100: %v", tries)
	if len(tries) == 0 {
		t.Errorf("the offline boot never tried to reach a mirror (the relay was not used?)")
	}
	for _, a := range tries {
		if a != "exit 1" {
			t.Errorf("a relay from the guest ended with %q, want every one to fail (exit 1): a mirror was reachable", a)
		}
	}
	for _, want := range []string{
		"nowhere-root: images/upd/latest: using the cached copy",
		"nowhere-root: images/upd/2.index: using the cached copy",
		"serves upd version 2",
		"from the cache /.nowhere-cache/chunks",
	} {
		if !strings.Contains(console4, want) {
			t.Errorf("the offline boot's console lacks %q:\n%s", want, tail(console4, 80))
		}
	}
	if n := daemonStat(console4, "errors"); n != 0 {
		t.Errorf("the root daemon counted %d read errors in the offline boot, want 0", n)
	}
}

// loggingRelay returns a relay command for qemu's guestfwd that relays to addr as
// `nowhere vm relay` does and appends how each relay ended ("exit N") to a log, and a
// function that reads that log.
func loggingRelay(t *testing.T, addr string) ([]string, func() []string) {
	t.Helper()
	dir := t.TempDir()
	logFile, script := filepath.Join(dir, "relay.log"), filepath.Join(dir, "relay.sh")
	// Standard output and error are the guest's connection: only the relay writes there.
	body := "#!/bin/sh\n" + env.bin + " vm relay " + addr + "\necho \"exit $?\" >> " + logFile + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{script}, func() []string {
		b, err := os.ReadFile(logFile)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if len(b) == 0 {
			return nil
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

// fileSHA256 is the hex SHA-256 of the file at path.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
