package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExtractRebuildsTheImage extracts each image over HTTP from both servers and from the
// store directory: the result is byte-identical to the original, and the ext4 image's
// zero runs are holes.
func TestExtractRebuildsTheImage(t *testing.T) {
	f := getFixture(t)
	servers := map[string]*httpServer{}
	for _, sk := range serverKinds {
		servers[sk.name] = sk.start(t, f.store)
	}
	for _, format := range formats {
		want, err := fileSHA256(f.images[format])
		if err != nil {
			t.Fatal(err)
		}
		sources := map[string]string{"dir": filepath.Join(f.store, "images", format)}
		for name, s := range servers {
			sources[name] = s.url + "/images/" + format
		}
		for how, src := range sources {
			t.Run(format+"/"+how, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), format+".img")
				r := mustNowhere(t, "extract", src, out, "--key", publicKey)
				got, err := fileSHA256(out)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("extracted image sha256 %s, want %s (the original)", got, want)
				}
				if r.stderr != "" {
					t.Errorf("stderr not empty (no progress bar off a terminal): %q", r.stderr)
				}
				if format != "ext4" {
					return
				}
				var st syscall.Stat_t
				if err := syscall.Stat(out, &st); err != nil {
					t.Fatal(err)
				}
				ix := loadIndex(t, f.store, format, 1)
				data := ix.Stats().DataBytes
				t.Logf("%d-byte ext4 image with %d bytes of stored chunks: extracted file allocates %d bytes",
					st.Size, data, st.Blocks*512)
				if st.Blocks*512 >= st.Size || st.Blocks*512 > data+1<<20 {
					t.Errorf("extracted file allocates %d bytes of %d; zero runs should be holes (data is %d bytes)",
						st.Blocks*512, st.Size, data)
				}
			})
		}
	}
}

// TestExtractFailsCleanlyOnAMissingChunk deletes one chunk from a served store: extract
// fails with one line naming the chunk, a non-zero exit, and no output file, complete or
// partial; an existing output file is left as it was.
func TestExtractFailsCleanlyOnAMissingChunk(t *testing.T) {
	f := getFixture(t)
	store := copyStore(t, f.store)
	ix := loadIndex(t, store, "ext4", 1)
	stored := entriesOverlapping(ix, 0, ix.Size)
	victim := stored[len(stored)/2]
	if err := os.Remove(filepath.Join(store, chunkURLPath(victim))); err != nil {
		t.Fatal(err)
	}
	hash := victim.ID.String()
	for _, sk := range serverKinds {
		t.Run(sk.name, func(t *testing.T) {
			srv := sk.start(t, store)
			outDir := t.TempDir()
			out := filepath.Join(outDir, "ext4.img")
			r := runNowhere(t, "extract", srv.url+"/images/ext4", out, "--timeout", "2s", "--key", publicKey)
			assertOneLineError(t, "extract with a missing chunk", r, "not found")
			if !strings.Contains(r.stderr, hash) && !strings.Contains(r.stderr, hash[:16]) {
				t.Errorf("the error does not name the missing chunk %s: %s", hash, r.stderr)
			}
			left, _ := os.ReadDir(outDir)
			for _, e := range left {
				t.Errorf("extract left %s behind", e.Name())
			}

			// An OUT that exists already is left as it was.
			old := []byte("an older image\n")
			if err := os.WriteFile(out, old, 0o644); err != nil {
				t.Fatal(err)
			}
			r = runNowhere(t, "extract", srv.url+"/images/ext4", out, "--timeout", "1s", "--key", publicKey)
			assertOneLineError(t, "extract over an existing file with a missing chunk", r, "not found")
			if got, _ := os.ReadFile(out); string(got) != string(old) {
				t.Errorf("a failed extract changed the existing %s", out)
			}
			if left, _ := os.ReadDir(outDir); len(left) != 1 {
				t.Errorf("a failed extract left %d files in %s, want only the old one", len(left), outDir)
			}
		})
	}
}

// TestExtractRemovesThePartialFileOnSignal interrupts extracts with SIGINT and SIGTERM
// while one chunk is held back by the server (so the extract is surely in the middle):
// the extract ends promptly with one line saying it was interrupted, a non-zero exit,
// and nothing left in the output directory, partial file included.
func TestExtractRemovesThePartialFileOnSignal(t *testing.T) {
	f := getFixture(t)
	ix := loadIndex(t, f.store, "ext4", 1)
	stored := entriesOverlapping(ix, 0, ix.Size)
	held := chunkURLPath(stored[len(stored)/2])
	srv := startGatedServer(t, f.store, map[string]bool{held: true})
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, "ext4.img")
			cmd := exec.Command(nowhereBin, "extract", srv.url+"/images/ext4", out, "--key", publicKey, "--progress", "never")
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					cmd.Process.Kill()
					<-done
				}
			})
			partial := func() bool {
				m, _ := filepath.Glob(filepath.Join(outDir, ".ext4.img.partial-*"))
				return len(m) == 1
			}
			before, _ := srv.count(held)
			if !waitFor(60*time.Second, func() bool { n, _ := srv.count(held); return n > before && partial() }) {
				t.Fatalf("after 60 s, the extract has not asked for the held chunk %s with its partial file in place (partial file: %v)\nstderr: %s",
					held, partial(), stderr.String())
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatalf("extract still runs 60 s after %s", sig)
			}
			r := result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
			assertOneLineError(t, "extract interrupted by "+sig.String(), r, "interrupted", out)
			left, _ := os.ReadDir(outDir)
			for _, e := range left {
				t.Errorf("the interrupted extract left %s behind", e.Name())
			}
		})
	}
}
