package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// makeTree builds the source tree every image is made from: nested and empty
// directories, empty, small and multi-MiB random files, files with long zero runs (as holes
// and as written zeros), symlinks of every kind, hard links, odd modes and owners, a FIFO,
// a long name. The content is deterministic.
func makeTree(root string) error {
	src := rand.NewChaCha8([32]byte{'n', 'o', 'w', 'h', 'e', 'r', 'e'})
	rng := rand.New(src)
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = src.Read(b)
		return b
	}
	var err error
	must := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	p := func(rel string) string { return filepath.Join(root, rel) }
	write := func(rel string, data []byte, mode os.FileMode) {
		must(os.MkdirAll(filepath.Dir(p(rel)), 0o755))
		must(os.WriteFile(p(rel), data, 0o644))
		must(os.Chmod(p(rel), mode)) // not subject to the umask
	}

	// Many small files in nested directories.
	for i := range 240 {
		dir := fmt.Sprintf("small/d%02d/e%d", i%24, i%3)
		write(fmt.Sprintf("%s/f%03d.dat", dir, i), random(rng.IntN(24<<10)), 0o644)
	}
	for i := range 8 {
		write(fmt.Sprintf("empty-files/e%d", i), nil, 0o644)
	}
	must(os.MkdirAll(p("empty-dir"), 0o755))
	must(os.MkdirAll(p("deep/a/b/c/d/e/f/g/h/i/j"), 0o755))
	write("deep/a/b/c/d/e/f/g/h/i/j/leaf.txt", []byte("the bottom\n"), 0o644)
	write("names/with space and ünïcode ✓.txt", []byte("odd name\n"), 0o644)
	// 250 bytes: mkfs.erofs 1.5 (Debian bookworm) fails on names of the 255-byte maximum.
	write("names/"+strings.Repeat("L", 250), []byte("long name\n"), 0o644)

	// Large random files, one of an odd size.
	write("big/random-5M", random(5<<20), 0o644)
	write("big/random-odd", random(3<<20+1234), 0o644)

	// Long zero runs: a sparse file (holes) and a file of written zeros.
	must(os.MkdirAll(p("sparse"), 0o755))
	f, e := os.Create(p("sparse/holes"))
	must(e)
	if e == nil {
		_, e = f.Write(random(1 << 20))
		must(e)
		_, e = f.WriteAt(random(1<<20+77), 9<<20) // 8 MiB hole before
		must(e)
		must(f.Truncate(16 << 20)) // and a hole at the end
		must(f.Close())
	}
	write("sparse/written-zeros", make([]byte, 4<<20), 0o644)
	mixed := append(append(random(100<<10), make([]byte, 2<<20)...), random(100<<10)...)
	write("sparse/mixed", mixed, 0o644)

	// Symlinks: relative, absolute, to a directory, dangling, and one too long to be stored
	// inline in the inode (ext4 keeps targets under 60 bytes there).
	must(os.MkdirAll(p("links"), 0o755))
	must(os.Symlink("../big/random-5M", p("links/to-file")))
	must(os.Symlink("/etc/passwd", p("links/absolute")))
	must(os.Symlink("../deep/a/b", p("links/to-dir")))
	must(os.Symlink("does/not/exist", p("links/dangling")))
	must(os.Symlink(strings.Repeat("long-target/", 20)+"end", p("links/long")))

	// Hard links: a big file twice, a small one three times across directories.
	must(os.MkdirAll(p("hard/x"), 0o755))
	must(os.Link(p("big/random-odd"), p("hard/random-odd-link")))
	write("hard/three", []byte("one inode, three names\n"), 0o640)
	must(os.Link(p("hard/three"), p("hard/x/three-2")))
	must(os.Link(p("hard/three"), p("links/three-3")))

	// Odd modes and owners.
	write("modes/private", []byte("0600\n"), 0o600)
	write("modes/none", []byte("0000\n"), 0)
	write("modes/setuid", []byte("#!/bin/sh\n"), os.ModeSetuid|0o755)
	write("modes/setgid", []byte("#!/bin/sh\n"), os.ModeSetgid|0o751)
	write("modes/readonly", []byte("0444\n"), 0o444)
	must(os.MkdirAll(p("modes/sticky"), 0o755))
	must(os.Chmod(p("modes/sticky"), os.ModeSticky|0o777))
	must(os.MkdirAll(p("modes/closed"), 0o755))
	write("modes/closed/inside", []byte("x\n"), 0o644)
	must(os.Chmod(p("modes/closed"), 0o700))
	write("owners/user", []byte("owned by 1234:5678\n"), 0o644)
	must(os.Lchown(p("owners/user"), 1234, 5678))
	must(os.Lchown(p("links/dangling"), 4321, 8765))
	must(syscall.Mkfifo(p("owners/fifo"), 0o620))
	return err
}

// node is what the comparison checks about one path.
type node struct {
	Type     fs.FileMode // type bits
	Mode     fs.FileMode // permission, setuid, setgid, sticky
	Uid, Gid uint32
	Size     int64  // regular files
	SHA256   string // regular files
	Target   string // symlinks
	Ino      uint64
	Nlink    uint64
}

// scanTree describes every path under root (relative, "." for root itself).
func scanTree(root string, skip func(rel string) bool) (map[string]node, error) {
	out := make(map[string]node)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		n := node{Type: info.Mode().Type(), Mode: info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
			Uid: st.Uid, Gid: st.Gid, Ino: st.Ino, Nlink: uint64(st.Nlink)}
		switch {
		case info.Mode().IsRegular():
			n.Size = info.Size()
			if n.SHA256, err = fileSHA256(path); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			if n.Target, err = os.Readlink(path); err != nil {
				return err
			}
		}
		out[rel] = n
		return nil
	})
	return out, err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// treeDiff lists every difference between the source tree and the tree read back: paths,
// types, modes, owners, content, symlink targets, and hard links (paths sharing an inode
// in the source share one in the copy, and only those).
func treeDiff(src, got map[string]node) []string {
	var paths []string
	for p := range src {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	srcToGot := make(map[uint64]uint64) // inode in src -> inode in got, for regular files
	gotToSrc := make(map[uint64]uint64)
	var diffs []string
	report := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	for _, p := range paths {
		s := src[p]
		g, ok := got[p]
		if !ok {
			report("%s: missing", p)
			continue
		}
		if s.Type != g.Type {
			report("%s: type %v, want %v", p, g.Type, s.Type)
			continue
		}
		if s.Mode != g.Mode && s.Type != fs.ModeSymlink {
			report("%s: mode %v, want %v", p, g.Mode, s.Mode)
		}
		if s.Uid != g.Uid || s.Gid != g.Gid {
			report("%s: owner %d:%d, want %d:%d", p, g.Uid, g.Gid, s.Uid, s.Gid)
		}
		if s.Size != g.Size || s.SHA256 != g.SHA256 {
			report("%s: content %d bytes sha256 %s, want %d bytes %s", p, g.Size, g.SHA256, s.Size, s.SHA256)
		}
		if s.Target != g.Target {
			report("%s: symlink to %q, want %q", p, g.Target, s.Target)
		}
		if s.Type == 0 { // regular file: hard links must map inode to inode, one to one
			if want, ok := srcToGot[s.Ino]; ok && want != g.Ino {
				report("%s: hard link broken: inode %d, its other names have %d", p, g.Ino, want)
			}
			if want, ok := gotToSrc[g.Ino]; ok && want != s.Ino {
				report("%s: shares inode %d with a path that is not its hard link in the source", p, g.Ino)
			}
			srcToGot[s.Ino], gotToSrc[g.Ino] = g.Ino, s.Ino
			if s.Nlink != g.Nlink {
				report("%s: %d links, want %d", p, g.Nlink, s.Nlink)
			}
		}
	}
	var extra []string
	for p := range got {
		if _, ok := src[p]; !ok {
			extra = append(extra, p)
		}
	}
	sort.Strings(extra)
	for _, p := range extra {
		report("%s: not in the source tree", p)
	}
	return diffs
}

// compareTrees fails the test for every difference treeDiff finds (the first 20 of them).
func compareTrees(t *testing.T, src, got map[string]node) {
	t.Helper()
	diffs := treeDiff(src, got)
	for i, d := range diffs {
		if i == 20 {
			t.Errorf("... and %d more differences", len(diffs)-20)
			break
		}
		t.Error(d)
	}
}

// TestTreeDiffNoticesEveryKindOfDifference makes sure the comparison the round-trip tests
// rely on can fail: each kind of damage to a copy of the source description is reported.
func TestTreeDiffNoticesEveryKindOfDifference(t *testing.T) {
	f := getFixture(t)
	if d := treeDiff(f.srcNodes, f.srcNodes); len(d) != 0 {
		t.Fatalf("a tree differs from itself: %v", d)
	}
	damage := map[string]func(m map[string]node){
		"missing": func(m map[string]node) { delete(m, "small/d03/e0/f003.dat") },
		"extra":   func(m map[string]node) { m["surprise"] = node{} },
		"content": func(m map[string]node) { n := m["big/random-5M"]; n.SHA256 = "00"; m["big/random-5M"] = n },
		"mode":    func(m map[string]node) { n := m["modes/setuid"]; n.Mode &^= fs.ModeSetuid; m["modes/setuid"] = n },
		"owner":   func(m map[string]node) { n := m["owners/user"]; n.Uid = 0; m["owners/user"] = n },
		"type":    func(m map[string]node) { n := m["owners/fifo"]; n.Type = 0; m["owners/fifo"] = n },
		"target":  func(m map[string]node) { n := m["links/long"]; n.Target = "x"; m["links/long"] = n },
		"hard link split": func(m map[string]node) {
			n := m["hard/x/three-2"]
			n.Ino += 1 << 40
			m["hard/x/three-2"] = n
		},
		"hard link made": func(m map[string]node) {
			a, b := m["modes/private"], m["modes/readonly"]
			b.Ino = a.Ino
			m["modes/readonly"] = b
		},
	}
	for what, fn := range damage {
		got := make(map[string]node, len(f.srcNodes))
		for k, v := range f.srcNodes {
			got[k] = v
		}
		fn(got)
		if d := treeDiff(f.srcNodes, got); len(d) == 0 {
			t.Errorf("%s: not noticed", what)
		} else {
			t.Logf("%s: %s", what, d[0])
		}
	}
}
