package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

// TestPackIsDeterministicFromAnySource packs the same image from a file, again from the
// file, from standard input and from a loop block device into one store: every version
// has the same chunk table, only the first stores anything, versions count up, and the
// summary is printed with no progress bar (stderr is not a terminal).
func TestPackIsDeterministicFromAnySource(t *testing.T) {
	f := getFixture(t)
	for _, format := range []string{"ext4", "squashfs"} {
		t.Run(format, func(t *testing.T) {
			img := f.images[format]
			store := filepath.Join(t.TempDir(), "store")
			// One chunking for every source: the default (auto) cuts at file boundaries it
			// reads from the filesystem's metadata, which a pipe cannot seek to, so standard
			// input would get content-defined chunks and another table by design.
			args := []string{"--store", store, "--name", "img", "--sign-key", secretKey, "--chunking", chunk.DefaultSpec}
			packFrom := func(v int, source string) {
				t.Helper()
				var r result
				if source == "stdin" {
					in, err := os.Open(img)
					if err != nil {
						t.Fatal(err)
					}
					defer in.Close()
					r = runCmdStdin(t, in, nowhereBin, append([]string{"pack", "-"}, args...)...)
				} else {
					r = runNowhere(t, append([]string{"pack", source}, args...)...)
				}
				if r.code != 0 {
					t.Fatalf("pack from %s: exit %d: %s", source, r.code, r.stderr)
				}
				if r.stderr != "" {
					t.Errorf("pack from %s: stderr not empty off a terminal: %q", source, r.stderr)
				}
				checkPackSummary(t, r.stdout, v, format)
				if v > 1 && !regexp.MustCompile(`unique: 0 new`).MatchString(r.stdout) {
					t.Errorf("pack #%d from %s stored new chunks:\n%s", v, source, r.stdout)
				}
				t.Logf("pack #%d from %s:\n%s", v, source, r.stdout)
			}
			packFrom(1, img)
			packFrom(2, img)
			packFrom(3, "stdin")
			if format == "ext4" { // a block device has a size in 512-byte sectors; so does this image
				packFrom(4, attachLoop(t, img))
			}

			first := loadIndex(t, store, "img", 1)
			last := 3
			if format == "ext4" {
				last = 4
			}
			for v := 2; v <= last; v++ {
				sameChunks(t, first, loadIndex(t, store, "img", v))
			}
			// Each subtest's store is another publisher's "img": its client starts with its own
			// rollback memory (the shared one would refuse version 3 after version 4).
			state := filepath.Join(t.TempDir(), "trust-state")
			if r := mustNowhere(t, "info", filepath.Join(store, "images", "img"), "--key", publicKey, "--state", state); !strings.Contains(r.stdout, fmt.Sprintf("version:   %d\n", last)) {
				t.Errorf("latest is not version %d:\n%s", last, r.stdout)
			}
			// The store holds exactly the unique chunks, and no temporary files.
			files := 0
			_ = filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
					t.Errorf("temporary file left in the store: %s", p)
				}
				if err == nil && strings.HasSuffix(p, ".cacnk") {
					files++
				}
				return err
			})
			if u := first.Stats().Unique; files != u {
				t.Errorf("the store holds %d chunk files, the image has %d unique chunks", files, u)
			}
		})
	}
}

// checkPackSummary checks the summary pack prints at the end.
func checkPackSummary(t *testing.T, out string, version int, fstype string) {
	t.Helper()
	for _, re := range []string{
		fmt.Sprintf(`(?m)^packed img version %d: .* image \(%s\), chunking cdc:`, version, fstype),
		`(?m)^  chunks: \d+ total, \d+ unique: \d+ new, \d+ already stored; \d+ zero runs`,
		`(?m)^  bytes: +\S+ \S+ read, \S+ \S+ stored$`,
		`(?m)^  time: +\S+ \(`,
		fmt.Sprintf(`(?m)^  index: +.*images/img/%d\.index$`, version),
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("pack summary lacks a line matching %s:\n%s", re, out)
		}
	}
}

// sameChunks fails the test unless two indexes describe the image with the same chunks.
func sameChunks(t *testing.T, a, b *index.Index) {
	t.Helper()
	if a.Size != b.Size || len(a.Entries) != len(b.Entries) || a.Chunking != b.Chunking {
		t.Errorf("version %d: %d bytes in %d entries (%v), version %d: %d bytes in %d entries (%v)",
			a.Version, a.Size, len(a.Entries), a.Chunking, b.Version, b.Size, len(b.Entries), b.Chunking)
		return
	}
	for i := range a.Entries {
		if a.Entries[i] != b.Entries[i] {
			t.Errorf("version %d entry %d: %+v, version %d: %+v", a.Version, i, a.Entries[i], b.Version, b.Entries[i])
			return
		}
	}
}
