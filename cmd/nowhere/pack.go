package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/bootprofile"
	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/mkfs"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/profile"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// maxExpires is the longest --expires pack accepts.
const maxExpires = 36500 * 24 * time.Hour

type packOptions struct {
	store    string
	name     string
	chunking string
	expires  string
	workers  int
	progress string
	key      string
	password string
	fromDir  string
	fs       string
	saveAs   string
	profiles []string
	arch     string

	profileBoot    bool          // --profile-boot: record a container boot (pack_boot.go)
	profileUntil   string        // the unit it boots to
	profileTimeout time.Duration // how long it may take
}

// chunkingAuto is the default --chunking: cut at file-data boundaries read from a known
// filesystem's metadata, content-defined (chunk.DefaultSpec) between them and for
// everything else (stdin, unknown formats, raw disks, unreadable metadata).
const chunkingAuto = "auto"

func newPackCommand() *cobra.Command {
	var o packOptions
	cmd := &cobra.Command{
		Use:   "pack {IMAGE | --from-dir TREE --fs TYPE} --store DIR --name NAME",
		Short: "Cut an image into chunks in a store and publish its index",
		Long: `Pack reads IMAGE (a file, a block device, or - for standard input) once, cuts it
into chunks, stores each new chunk zstd-compressed under DIR/chunks/ and publishes
DIR/images/NAME/<version>.index, then moves DIR/images/NAME/latest to it.
Packing the same image again stores nothing new. With --sign-key, the index and the latest
pointer are signed (minisign format; nowhere keygen or minisign -G make keys), and
detached .minisig signatures are written beside them for minisign -V.

With --from-dir, pack first builds a reproducible erofs, squashfs or ext4 image of TREE
with the system's mkfs tools (fixed timestamps, UUID and hash seed; see docs/chunking.md).

By default (--chunking auto) chunks end at every file's data boundaries, read from the
filesystem's own metadata, so an update re-downloads little more than the changed files.`,
		Example: `  nowhere pack rootfs.squashfs --store ./store --name debian --sign-key publisher.key --expires 30d
  nowhere pack --from-dir ./rootfs --fs erofs --store ./store --name debian --save-image debian.erofs
  nowhere pack /dev/vg0/root --store /srv/nowhere --name server --chunking cdc:16K:64K:256K
  mksquashfs tree - -quiet | nowhere pack - --store ./store --name tree --chunking fixed:64K`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.fromDir != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.fromDir != "" {
				return runPackTree(cmd.Context(), o)
			}
			return runPack(cmd.Context(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "", "store directory (created if missing) or s3://BUCKET/PREFIX")
	f.StringVar(&o.name, "name", "", "image name")
	f.StringVar(&o.chunking, "chunking", chunkingAuto, "auto (file-data boundaries of ext4, erofs and squashfs, else "+chunk.DefaultSpec+"), fixed:SIZE or cdc:MIN:AVG:MAX[:ALIGN] (ALIGN defaults to 4K, 1 for squashfs)")
	f.StringVar(&o.fromDir, "from-dir", "", "build the image from this directory tree (needs --fs)")
	f.StringVar(&o.fs, "fs", "", "with --from-dir: erofs, squashfs or ext4")
	f.StringVar(&o.saveAs, "save-image", "", "with --from-dir: keep the built image in this file")
	f.StringVar(&o.expires, "expires", "", "the index expires after this long (e.g. 30d); default never")
	f.IntVar(&o.workers, "parallel", 0, "hash/compress workers at once (0: the default, the number of CPUs)")
	deprecatedAlias(f, "pack", "workers", "parallel")
	f.StringVar(&o.progress, "progress", "auto", "progress bar: auto (on a terminal), always or never")
	f.StringVar(&o.key, "sign-key", "", "sign with this minisign secret key file (clients refuse unsigned images by default)")
	deprecatedAlias(f, "pack", "key", "sign-key")
	f.StringArrayVar(&o.profiles, "profile", nil, "put this boot profile (nowhere profile record) in the index; repeatable: the boots are merged")
	f.StringVar(&o.password, "password-file", "", "the secret key's password is the first line of this file (default: asked on the terminal)")
	f.StringVar(&o.arch, "arch", "", "the machine architecture the image is for (amd64, arm64, or any for a data image); default: with --from-dir, the ELF machine of the tree's /sbin/init or /bin/sh, else none (any)")
	f.BoolVar(&o.profileBoot, "profile-boot", false, "boot the image in a container (systemd-nspawn) first and put the chunks its boot reads in the index as a boot profile (merged after any --profile files)")
	f.StringVar(&o.profileUntil, "profile-until", bootprofile.DefaultUntil, "with --profile-boot: record the boot until this systemd unit is reached")
	durationVar(f, &o.profileTimeout, "profile-timeout", bootprofile.DefaultTimeout, "with --profile-boot: give up on the container boot (and publish without it) after this long")
	_ = cmd.MarkFlagRequired("store")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

// runPackTree builds the image of o.fromDir (into --save-image, or a temporary file) and
// packs it.
func runPackTree(ctx context.Context, o packOptions) error {
	if err := index.ValidName(o.name); err != nil {
		return err
	}
	if o.fs == "" {
		return exitError{usageExit, errors.New("--from-dir needs --fs: the filesystem to build the tree into (erofs, squashfs or ext4)")}
	}
	t, err := mkfs.ParseType(o.fs)
	if err != nil {
		return err
	}
	if o.chunking != chunkingAuto { // check before a long build
		if _, err := chunk.ParseSpec(o.chunking); err != nil {
			return err
		}
	}
	if o.arch == "" {
		// A tree without an ELF init or shell is a data image: no architecture (any).
		if a, err := treeArch(o.fromDir); err == nil {
			o.arch = a
		}
	}
	out := o.saveAs
	if out == "" {
		tmp, err := os.MkdirTemp("", "nowhere-mkfs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		out = filepath.Join(tmp, o.name+"."+string(t))
	}
	if err := mkfs.Build(ctx, mkfs.Options{FS: t, Tree: o.fromDir, Out: out, Seed: o.name}); err != nil {
		return fmt.Errorf("building %s image of %s: %w", t, o.fromDir, err)
	}
	return runPack(ctx, out, o)
}

func runPack(ctx context.Context, image string, o packOptions) error {
	if o.fromDir == "" && (o.fs != "" || o.saveAs != "") {
		return fmt.Errorf("--fs and --save-image go with --from-dir")
	}
	fsAware := o.chunking == chunkingAuto
	spec, err := chunk.ParseSpec(o.chunking)
	if fsAware {
		spec, err = chunk.ParseSpec(chunk.DefaultSpec)
	}
	if err != nil {
		return err
	}
	var expires time.Time
	if o.expires != "" {
		d, err := units.ParseDuration(o.expires)
		if err != nil {
			return fmt.Errorf("--expires: %w", err)
		}
		// An index that is expired when published can never be booted; one that outlives
		// a century is a typo (and near the edge of what a time can hold).
		if d <= 0 {
			return fmt.Errorf("--expires %s: an image that expires when published cannot be booted: give a positive duration (e.g. 30d), or leave --expires out for never", o.expires)
		}
		if d > maxExpires {
			return fmt.Errorf("--expires %s: at most 36500d (100 years); leave --expires out for never", o.expires)
		}
		expires = time.Now().Add(d).UTC().Truncate(time.Second)
	}
	// The key is read first: a wrong password must fail in a second, not after packing.
	var signer pack.Signer
	if o.key != "" {
		k, err := trust.LoadSecretKey(o.key, func() (string, error) {
			return readPassword(o.password, "password for "+o.key+": ")
		})
		if err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
		signer = k
	}
	var boots *profile.Trace
	if len(o.profiles) > 0 { // read before packing: a bad file must fail in a second
		trs, err := loadTraces(o.profiles)
		if err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
		boots = profile.Merge(trs...)
	}
	arch := o.arch
	if arch == "any" {
		arch = ""
	}
	if err := index.ValidArch(arch); err != nil {
		return fmt.Errorf("--arch: %w", err)
	}
	booted := packBootProfile(ctx, image, o) // before the store is locked: seconds, or a one-line refusal
	var applied profile.ApplyResult
	finish := func(ix *index.Index) error {
		ix.Arch = arch
		boots = withBootProfile(ix, booted, boots)
		if boots != nil {
			applied = profile.Apply(ix, boots)
			ix.Profile = applied.Profile
		}
		return nil
	}
	in, size, err := openImage(image)
	if err != nil {
		return err
	}
	defer in.Close()
	w, err := openWriteStore(ctx, o.store)
	if err != nil {
		return err
	}
	if c, ok := w.(interface{ Close() error }); ok {
		defer c.Close()
	}
	lk, err := lockStore(ctx, w, o.store, false)
	if err != nil {
		return err
	}
	defer lk.unlock()
	ctx = lk.ctx

	bar := newProgress(o.progress, size, "packing "+o.name)
	res, err := pack.Run(ctx, in, w, pack.Options{
		Name: o.name, Spec: spec, Expires: expires, Workers: o.workers,
		Progress: bar.Set, Signer: signer, FSAware: fsAware,
		Warn: func(msg string) { logf("warning: %s: %s", image, msg) },
		Finish: func(ix *index.Index) error {
			if err := lk.held(); err != nil { // about to publish what the lock protected
				return err
			}
			return finish(ix)
		},
	})
	bar.Finish()
	if err != nil {
		return fmt.Errorf("pack %s: %w", image, lk.explain(err))
	}
	ix := res.Index
	fs := string(res.FSType)
	if fs == "" {
		fs = "unknown filesystem"
	}
	fmt.Printf("packed %s version %d: %s image (%s), chunking %s, arch %s\n", ix.Name, ix.Version, units.Bytes(ix.Size), fs, ix.Chunking, ix.ArchOrAny())
	fmt.Printf("  chunks: %d total, %d unique: %d new, %d already stored; %d zero runs (%s)\n",
		res.Chunks, res.Unique, res.New, res.Existing, res.Zero, units.Bytes(res.ZeroBytes))
	fmt.Printf("  bytes:  %s read, %s stored\n", units.Bytes(res.Read), units.Bytes(res.Stored))
	fmt.Printf("  time:   %s (%s)\n", res.Elapsed.Round(time.Millisecond), units.Rate(res.Read, res.Elapsed))
	fmt.Printf("  index:  %s/%s\n", o.store, store.IndexPath(ix.Name, ix.Version))
	if boots != nil {
		fmt.Printf("  profile: %s from %s", units.Count(len(ix.Profile.Entries), "chunk"), units.Count(ix.Profile.Boots, "boot"))
		if applied.Missing > 0 {
			fmt.Printf(" (%s of the profile not in this image: left out)", units.Count(applied.Missing, "chunk"))
		}
		fmt.Println()
	}
	if k, ok := signer.(*trust.SecretKey); ok {
		fmt.Printf("  signed: by key %s (check with: minisign -Vm %s/%s -P %s)\n", k.ID(), o.store, store.IndexPath(ix.Name, ix.Version), k.Public())
	} else {
		fmt.Printf("  signed: no (clients will need --insecure; sign with --sign-key)\n")
	}
	return nil
}

// openImage opens a file, a block device or "-" (stdin) and returns its size (-1 when
// unknown).
func openImage(p string) (io.ReadCloser, int64, error) {
	if p == "-" {
		return io.NopCloser(os.Stdin), -1, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, fmt.Errorf("image %s: %w", p, unwrapPathError(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("image %s: %w", p, err)
	}
	switch {
	case st.Mode().IsRegular():
		return f, st.Size(), nil
	case st.Mode()&os.ModeDevice != 0:
		size, err := f.Seek(0, io.SeekEnd)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("image %s: %w", p, err)
		}
		return f, size, nil
	case st.IsDir():
		f.Close()
		return nil, 0, fmt.Errorf("image %s is a directory (pack takes an image file or block device)", p)
	}
	return f, -1, nil // a pipe or FIFO
}
