package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type packOptions struct {
	store    string
	name     string
	chunking string
	expires  string
	workers  int
	progress string
	key      string
	password string
}

func newPackCommand() *cobra.Command {
	var o packOptions
	cmd := &cobra.Command{
		Use:   "pack IMAGE --store DIR --name NAME",
		Short: "Cut an image into chunks in a store and publish its index",
		Long: `Pack reads IMAGE (a file, a block device, or - for standard input) once, cuts it
into chunks, stores each new chunk zstd-compressed under DIR/chunks/ and publishes
DIR/images/NAME/<version>.index, then moves DIR/images/NAME/latest to it.
Packing the same image again stores nothing new. With --key, the index and the latest
pointer are signed (minisign format; nowhere keygen or minisign -G make keys), and
detached .minisig signatures are written beside them for minisign -V.`,
		Example: `  nowhere pack rootfs.squashfs --store ./store --name debian --key publisher.key --expires 30d
  nowhere pack /dev/vg0/root --store /srv/nowhere --name server --chunking cdc:16K:64K:256K
  mksquashfs tree - -quiet | nowhere pack - --store ./store --name tree --chunking fixed:64K`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runPack(cmd.Context(), args[0], o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "", "store directory (created if missing)")
	f.StringVar(&o.name, "name", "", "image name")
	f.StringVar(&o.chunking, "chunking", chunk.DefaultSpec, "fixed:SIZE or cdc:MIN:AVG:MAX[:ALIGN] (ALIGN defaults to 4K, 1 for squashfs)")
	f.StringVar(&o.expires, "expires", "", "the index expires after this long (e.g. 30d); default never")
	f.IntVar(&o.workers, "workers", 0, "parallel hash/compress workers (default: number of CPUs)")
	f.StringVar(&o.progress, "progress", "auto", "progress bar: auto (on a terminal), always or never")
	f.StringVar(&o.key, "key", "", "sign with this minisign secret key file (clients refuse unsigned images by default)")
	f.StringVar(&o.password, "password-file", "", "the secret key's password is the first line of this file (default: asked on the terminal)")
	_ = cmd.MarkFlagRequired("store")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func runPack(ctx context.Context, image string, o packOptions) error {
	spec, err := chunk.ParseSpec(o.chunking)
	if err != nil {
		return err
	}
	var expires time.Time
	if o.expires != "" {
		d, err := units.ParseDuration(o.expires)
		if err != nil {
			return fmt.Errorf("--expires: %w", err)
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
			return fmt.Errorf("--key: %w", err)
		}
		signer = k
	}
	in, size, err := openImage(image)
	if err != nil {
		return err
	}
	defer in.Close()
	w, err := store.CreateDir(o.store)
	if err != nil {
		return err
	}
	defer w.Close()

	bar := newProgress(o.progress, size, "packing "+o.name)
	res, err := pack.Run(ctx, in, w, pack.Options{
		Name: o.name, Spec: spec, Expires: expires, Workers: o.workers,
		Progress: bar.Set, Signer: signer,
	})
	bar.Finish()
	if err != nil {
		return fmt.Errorf("pack %s: %w", image, err)
	}
	ix := res.Index
	fs := string(res.FSType)
	if fs == "" {
		fs = "unknown filesystem"
	}
	fmt.Printf("packed %s version %d: %s image (%s), chunking %s\n", ix.Name, ix.Version, units.Bytes(ix.Size), fs, ix.Chunking)
	fmt.Printf("  chunks: %d total, %d unique: %d new, %d already stored; %d zero runs (%s)\n",
		res.Chunks, res.Unique, res.New, res.Existing, res.Zero, units.Bytes(res.ZeroBytes))
	fmt.Printf("  bytes:  %s read, %s stored\n", units.Bytes(res.Read), units.Bytes(res.Stored))
	fmt.Printf("  time:   %s (%s)\n", res.Elapsed.Round(time.Millisecond), units.Rate(res.Read, res.Elapsed))
	fmt.Printf("  index:  %s/%s\n", o.store, store.IndexPath(ix.Name, ix.Version))
	if k, ok := signer.(*trust.SecretKey); ok {
		fmt.Printf("  signed: by key %s (check with: minisign -Vm %s/%s -P %s)\n", k.ID(), o.store, store.IndexPath(ix.Name, ix.Version), k.Public())
	} else {
		fmt.Printf("  signed: no (clients will need --insecure; sign with --key)\n")
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
