package e2e

import (
	"crypto/rand"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/store"
	"golang.org/x/sys/unix"
)

// TestPackAndSyncStopCleanlyOnSIGINT: a pack or a sync that SIGINT stops mid-way (the
// root context's cancellation, not a kill) exits non-zero with one line on stderr, and
// leaves no temporary file in the store it wrote and its lock free for the next writer
// or a gc.
func TestPackAndSyncStopCleanlyOnSIGINT(t *testing.T) {
	f := getFixture(t)

	t.Run("pack", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "store")
		// Standard input that delivers a part of the image and then stalls: the pack is
		// mid-way, with chunks stored and more to come, when the signal comes.
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pw.Close()
		cmd := exec.Command(nowhereBin, "pack", "-", "--store", dst, "--name", "stalled", "--sign-key", secretKey, "--progress", "never")
		cmd.Stdin = pr
		start := startInterruptible(t, cmd)
		pr.Close()
		go func() {
			if _, err := io.CopyN(pw, rand.Reader, 16<<20); err != nil {
				t.Logf("feeding the pack: %v", err)
			}
		}()
		if !waitFor(60*time.Second, func() bool { return countChunks(dst) > 0 }) {
			t.Fatalf("after 60 s, the pack has stored no chunk\nstderr: %s", start.stderr.String())
		}
		r := start.interrupt(t, syscall.SIGINT)
		assertOneLineError(t, "pack interrupted by SIGINT", r, "pack")
		assertStoreClean(t, dst)
		if _, err := os.Stat(filepath.Join(dst, "images", "stalled")); err == nil {
			t.Errorf("the interrupted pack published an index")
		}
	})

	t.Run("sync", func(t *testing.T) {
		ix := loadIndex(t, f.store, "ext4", 1)
		stored := entriesOverlapping(ix, 0, ix.Size)
		held := chunkURLPath(stored[len(stored)/2])
		srv := startGatedServer(t, f.store, map[string]bool{held: true})
		dst := filepath.Join(t.TempDir(), "mirror")
		cmd := exec.Command(nowhereBin, "sync", srv.url, dst, "--image", "ext4", "--key", publicKey, "--progress", "never")
		start := startInterruptible(t, cmd)
		if !waitFor(60*time.Second, func() bool { n, _ := srv.count(held); return n > 0 }) {
			t.Fatalf("after 60 s, the sync has not asked for the held chunk %s\nstderr: %s", held, start.stderr.String())
		}
		r := start.interrupt(t, syscall.SIGINT)
		assertOneLineError(t, "sync interrupted by SIGINT", r, "sync")
		assertStoreClean(t, dst)
	})
}

type interruptible struct {
	cmd            *exec.Cmd
	stdout, stderr strings.Builder
	done           chan error
}

func startInterruptible(t *testing.T, cmd *exec.Cmd) *interruptible {
	t.Helper()
	p := &interruptible{cmd: cmd, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// interrupt sends sig and waits for the command to exit, within 60 s.
func (p *interruptible) interrupt(t *testing.T, sig syscall.Signal) result {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s still runs 60 s after %s", p.cmd.Args[1], sig)
	}
	return result{stdout: p.stdout.String(), stderr: p.stderr.String(), code: p.cmd.ProcessState.ExitCode()}
}

// countChunks counts the chunk files under dir/chunks.
func countChunks(dir string) int {
	n := 0
	filepath.WalkDir(filepath.Join(dir, "chunks"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), store.TempPrefix) {
			n++
		}
		return nil
	})
	return n
}

// assertStoreClean checks that a directory store has no temporary files and that its
// lock is free (an exclusive flock, as gc takes, succeeds at once).
func assertStoreClean(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), store.TempPrefix) {
			rel, _ := filepath.Rel(dir, p)
			t.Errorf("the interrupted writer left the temporary file %s", rel)
		}
		return nil
	})
	lf, err := os.OpenFile(filepath.Join(dir, store.LockPath), os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("the store's lock is still held after the writer exited: %v", err)
	}
}
