// Package mkfs builds filesystem images from a directory tree with the system's mkfs tools,
// reproducibly: the same tree gives the same bytes, and two versions of a tree give images
// that share as many blocks as the tools allow. docs/chunking.md explains each flag.
package mkfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/fstype"
)

// Options describe one image to build.
type Options struct {
	FS   fstype.Type
	Tree string // directory to copy into the image
	Out  string // image file to write (replaced atomically)
	// Seed names the image: its UUID (and ext4's directory hash seed) derive from it, so
	// every version of one image gets the same ones and different images different ones.
	Seed string
}

// Types lists the filesystems Build makes.
var Types = []fstype.Type{fstype.Erofs, fstype.Squashfs, fstype.Ext4}

// ParseType checks a --fs value.
func ParseType(s string) (fstype.Type, error) {
	for _, t := range Types {
		if string(t) == s {
			return t, nil
		}
	}
	return fstype.Unknown, fmt.Errorf("--fs %q: want erofs, squashfs or ext4", s)
}

// Build writes the image for o.Tree to o.Out.
func Build(ctx context.Context, o Options) error {
	st, err := os.Stat(o.Tree)
	if err != nil {
		return fmt.Errorf("tree %s: %w", o.Tree, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("tree %s is not a directory", o.Tree)
	}
	dir := filepath.Dir(o.Out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(o.Out)+".*.tmp")
	if err != nil {
		return fmt.Errorf("image %s: %w", o.Out, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // after a successful rename this removes nothing
	args, env, err := command(o, tmp.Name())
	if err != nil {
		return err
	}
	if err := run(ctx, env, args); err != nil {
		return err
	}
	if o.FS == fstype.Ext4 {
		if err := fixExt4Times(tmp.Name()); err != nil {
			return fmt.Errorf("normalising timestamps: %w", err)
		}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), o.Out); err != nil {
		return fmt.Errorf("image %s: %w", o.Out, err)
	}
	return nil
}

// UUID derives the filesystem UUID from seed (a version-4-shaped UUID, as mkfs expects).
func UUID(seed string) string {
	h := sha256.Sum256([]byte("nowhere mkfs " + seed))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// command returns the mkfs command line and extra environment for o, writing to out.
func command(o Options, out string) ([]string, []string, error) {
	uuid := UUID(o.Seed)
	switch o.FS {
	case fstype.Erofs:
		return []string{"mkfs.erofs", "--quiet",
			"-T0",       // build time and every mtime 0: erofs-utils 1.5 cannot fix one and keep the others
			"-U" + uuid, // fixed UUID
			out, o.Tree}, nil, nil
	case fstype.Squashfs:
		return []string{"mksquashfs", o.Tree, out, "-noappend", "-quiet", "-no-progress",
			"-comp", "zstd", "-b", "128K",
			"-reproducible",   // the same output whatever the number of threads
			"-mkfs-time", "0", // superblock time; files keep their mtimes (part of the tree)
			"-no-fragments", // each file's data is its own blocks: see docs/chunking.md
		}, nil, nil
	case fstype.Ext4:
		size, err := ext4Size(o.Tree)
		if err != nil {
			return nil, nil, err
		}
		return []string{"mkfs.ext4", "-F", "-q",
				"-b", "4096", "-I", "256", "-i", "16384", "-m", "0",
				"-U", uuid,
				"-E", "hash_seed=" + uuid + ",root_owner=0:0,lazy_itable_init=0,nodiscard",
				"-d", o.Tree, out, fmt.Sprintf("%dk", size>>10)},
			[]string{"E2FSPROGS_FAKE_TIME=1"}, // superblock, root and lost+found times
			nil
	}
	return nil, nil, fmt.Errorf("cannot build a %q image (want erofs, squashfs or ext4)", o.FS)
}

// ext4Size picks the image size: a power of two comfortably above what the tree needs, so
// that versions of a tree that grow a little keep the same size and hence the same block
// groups and inode tables (zero blocks cost nothing in a store).
func ext4Size(tree string) (int64, error) {
	var data, inodes int64
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		inodes++
		info, err := d.Info()
		if err != nil {
			return err
		}
		n := info.Size()
		if d.IsDir() || n < 4096 {
			n = 4096
		}
		data += (n + 4095) &^ 4095
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("tree %s: %w", tree, err)
	}
	need := data + data/4 + inodes*256 + 64<<20 // slack, inode tables, journal
	if min := inodes * 16384 * 5 / 4; need < min {
		need = min // one inode per 16 KiB (-i 16384) must cover every file
	}
	size := int64(64 << 20)
	for size < need {
		size *= 2
	}
	return size, nil
}

func run(ctx context.Context, env, args []string) error {
	path, err := exec.LookPath(args[0])
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if p := filepath.Join(dir, args[0]); isExec(p) {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s not found: install %s", args[0], packageOf(args[0]))
	}
	cmd := exec.CommandContext(ctx, path, args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return fmt.Errorf("%s: %s", args[0], msg)
		}
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return nil
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func packageOf(tool string) string {
	switch tool {
	case "mkfs.erofs":
		return "erofs-utils"
	case "mksquashfs":
		return "squashfs-tools"
	}
	return "e2fsprogs"
}
