package rootd

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/profile"
)

// TestDaemonPrefetchesAndRecordsTheProfile runs the real daemon on an image whose index
// carries a boot profile (pack --profile): it must prefetch the profile's chunks before
// anything reads them (the server's counters), and with RecordProfile print the chunks
// read, in order, as console lines that profile.ParseConsole reads back.
func TestDaemonPrefetchesAndRecordsTheProfile(t *testing.T) {
	needRootDaemonEnv(t)
	dir := t.TempDir()
	bin := buildNowhere(t, dir)
	secret, public := keygen(t, bin, dir, "publisher")
	img := make([]byte, 32*64<<10)
	rand.Read(img)
	imgFile := filepath.Join(dir, "disk.img")
	os.WriteFile(imgFile, img, 0o644)
	storeDir := filepath.Join(dir, "store")
	packImage(t, bin, imgFile, storeDir, "--chunking", "fixed:64K", "--key", secret)
	ix1 := readIndex(t, storeDir, 1)
	boot, err := profile.FromEntries(ix1, []int{7, 3, 20, 21})
	if err != nil {
		t.Fatal(err)
	}
	profFile := filepath.Join(dir, "boot.profile")
	os.WriteFile(profFile, boot.Encode(), 0o644)
	packImage(t, bin, imgFile, storeDir, "--chunking", "fixed:64K", "--key", secret, "--profile", profFile)
	if ix2 := readIndex(t, storeDir, 2); len(ix2.Profile.Entries) != 4 || ix2.Profile.Entries[0] != 7 {
		t.Fatalf("pack --profile: index profile %v, want [7 3 20 21]", ix2.Profile.Entries)
	}
	srv, err := vm.Serve(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mnt := filepath.Join(dir, "mnt")
	logPath := filepath.Join(dir, "daemon.log")
	logFile, _ := os.Create(logPath)
	defer logFile.Close()
	p, err := Start(bin, Spec{
		Image: "http://" + srv.Addr + "/images/disk", Keys: []string{public}, StateFile: filepath.Join(dir, "trust-state"),
		Mountpoint: mnt, MemCache: 16 << 20, ReadAhead: -1, Prefetch: 2, RecordProfile: true,
	}, logFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(mnt, unix.MNT_DETACH)
		syscall.Kill(p.Pid, syscall.SIGKILL)
	})
	waitLog := func(re *regexp.Regexp) []string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			b, _ := os.ReadFile(logPath)
			if m := re.FindStringSubmatch(string(b)); m != nil {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the daemon's log:\n%s", re, b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog(regexp.MustCompile(`prefetched 4 chunks`))
	if c := srv.Counts(); c.ChunkRequests != 4 {
		t.Fatalf("%d chunk requests before any read, want the profile's 4", c.ChunkRequests)
	}
	// O_DIRECT: each read reaches the daemon, and the kernel reads nothing ahead.
	fd, err := unix.Open(p.Ready.File, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	raw := make([]byte, 64<<10+4096)
	buf := raw[4096-int(uintptr(unsafe.Pointer(&raw[0]))&4095):][:64<<10]
	for _, i := range []int{20, 7, 9} {
		n, err := unix.Pread(fd, buf, int64(i)*64<<10)
		for err == unix.EINTR {
			n, err = unix.Pread(fd, buf, int64(i)*64<<10)
		}
		if err != nil || n != len(buf) || !bytes.Equal(buf, img[i*64<<10:(i+1)*64<<10]) {
			t.Fatalf("read chunk %d: %d bytes, %v", i, n, err)
		}
	}
	if c := srv.Counts(); c.ChunkRequests != 5 {
		t.Errorf("%d chunk requests after reading two prefetched chunks and one other, want 5", c.ChunkRequests)
	}
	// The reads show up on the console, in order (the kernel may have read the start of
	// the file first, and reads ahead of ours: look for our three in order).
	waitLog(regexp.MustCompile(`profile disk 2 @\d+:.* 9\b`))
	b, _ := os.ReadFile(logPath)
	rec, err := profile.ParseConsole(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[int]int{}
	for k, e := range rec.Entries {
		pos[e] = k + 1
	}
	if rec.Image != "disk" || rec.Version != 2 || len(rec.Gaps) != 0 || pos[20] == 0 || !(pos[20] < pos[7] && pos[7] < pos[9]) {
		t.Errorf("recorded %s %d: %v (gaps %v); want 20, 7, 9 in that order", rec.Image, rec.Version, rec.Entries, rec.Gaps)
	}
	if !strings.Contains(string(b), "prefetching the boot profile: 4 chunks, 2 at a time") {
		t.Errorf("the daemon did not say it prefetches:\n%s", b)
	}
}

func readIndex(t *testing.T, storeDir string, v int) *index.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(storeDir, "images", "disk", strconv.Itoa(v)+".index"))
	if err != nil {
		t.Fatal(err)
	}
	ix, err := index.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}
