package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestMirrorsFailsWhenNoMirrorAnswers runs `nowhere mirrors` against closed ports: it still
// prints the table (each mirror down, with its error), then fails with one last line
// saying no mirror answered. With one live mirror among them, it succeeds.
func TestMirrorsFailsWhenNoMirrorAnswers(t *testing.T) {
	f := getFixture(t)
	dead1 := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	dead2 := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))

	// Latency only (no image), and with an image whose chunks would measure throughput.
	for _, first := range []string{dead1, dead1 + "/images/erofs"} {
		r := runNowhere(t, "mirrors", first, dead2, "--no-mirror-list")
		checkNoMirrorAnswered(t, r, dead1, dead2)
	}

	srv := startNowhereServe(t, f.store)
	r := runNowhere(t, "mirrors", srv.url+"/images/erofs", dead1, "--no-mirror-list", "--samples", "2")
	if r.code != 0 {
		t.Fatalf("mirrors with one live mirror: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, srv.url) || !strings.Contains(r.stdout, " up ") {
		t.Errorf("the live mirror is not listed up:\n%s", r.stdout)
	}
}

func checkNoMirrorAnswered(t *testing.T, r result, dead1, dead2 string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("mirrors with no mirror answering: exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, m := range []string{dead1, dead2} {
		if !strings.Contains(r.stdout, m) {
			t.Errorf("the table does not list %s:\n%s", m, r.stdout)
		}
	}
	if strings.Contains(r.stdout, " up ") {
		t.Errorf("the table shows a dead mirror up:\n%s", r.stdout)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if last := lines[len(lines)-1]; last != "nowhere: no mirror answered (2 mirrors probed)" {
		t.Errorf("last line on stderr: %q, want the one saying no mirror answered", last)
	}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("stderr looks like a crash:\n%s", r.stderr)
	}

}
