package boot

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBootDebianSystemdShutsDownCleanly boots Debian bookworm (systemd) from HTTP, lets a
// unit check the root daemon from inside the running system, and powers off: systemd's
// shutdown must leave the daemon alone (its argv[0] starts with '@') and finish without
// an I/O error on the root it is still reading from.
func TestBootDebianSystemdShutsDownCleanly(t *testing.T) {
	needEnv(t)
	out, err := exec.Command(filepath.Join(env.top, "scripts/mkimage-debian.sh"), "v1").Output()
	if err != nil {
		t.Fatalf("scripts/mkimage-debian.sh: %v", err)
	}
	img := strings.TrimSpace(string(out))
	s := packAndServe(t, img, "debian")
	r := boot(t, s, bootOpts{initrd: env.initrd, args: "nowhere.image=http://10.0.2.100/images/debian nowhere.key=" + env.publicKey + " e2e.check",
		mem: 1024, timeout: 8 * time.Minute, expect: []string{`E2E-SYSTEMD-OK`, `Welcome to .*Debian`, `reboot: Power down`}})
	c := r.Console

	ok := line(c, "E2E-SYSTEMD-OK")
	if !regexp.MustCompile(`^daemon=\d+ root=overlay`).MatchString(ok) {
		t.Errorf("the check unit saw %q, want the daemon's pid and an overlay root", ok)
	}
	if daemonStat(c, "fetches") <= 0 {
		t.Errorf("the root daemon did not answer SIGUSR1 from the running system")
	}
	for _, bad := range []string{"nowhere-root: got", "I/O error", "SQUASHFS error", "Failed to read block",
		"Kernel panic", "Sending SIGKILL", "nowhere-root: FUSE mount"} {
		if strings.Contains(c, bad) {
			t.Errorf("console shows %q:\n%s", bad, tail(c, 60))
		}
	}
	st := s.index.Stats()
	counts := s.counts()
	t.Logf("debian: image %.1f MB, fetched %.1f MB of chunks in %d requests (%.0f%%); switch to systemd at %v, check at %v",
		float64(s.index.Size)/1e6, float64(counts.ChunkBytes)/1e6, counts.ChunkRequests,
		100*float64(counts.ChunkBytes)/float64(st.StoredBytes), r.Matches[`Welcome to .*Debian`], r.Matches[`E2E-SYSTEMD-OK`])
	if counts.ChunkBytes >= st.StoredBytes {
		t.Errorf("fetched %d chunk bytes of %d: the whole image", counts.ChunkBytes, st.StoredBytes)
	}
}
