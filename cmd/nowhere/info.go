package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/units"
)

func newInfoCommand() *cobra.Command {
	so := &sourceOptions{timeout: time.Minute}
	var t trustOptions
	cmd := &cobra.Command{
		Use:   "info SOURCE",
		Short: "Describe an image: name, version, size, chunking, chunks and stored bytes",
		Example: `  nowhere info ./store/images/debian --key publisher.pub
  nowhere info http://127.0.0.1:8080/images/debian/2 --key RWQ...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t.warnInsecure()
			return runInfo(cmd.Context(), args[0], so, &t)
		},
	}
	so.addFlags(cmd.Flags(), false)
	t.addFlags(cmd.Flags())
	return cmd
}

func runInfo(ctx context.Context, src string, so *sourceOptions, t *trustOptions) error {
	img, err := openImageSource(ctx, src, so, t)
	defer so.close()
	if err != nil {
		return err
	}
	ix := img.index
	st := ix.Stats()
	expires := "never"
	if !ix.Expires.IsZero() {
		expires = ix.Expires.Format(time.RFC3339)
	}
	signed := signedBy(ix.Signature, img.verifier)
	fmt.Printf("name:      %s\n", ix.Name)
	fmt.Printf("version:   %d\n", ix.Version)
	fmt.Printf("arch:      %s\n", ix.ArchOrAny())
	fmt.Printf("store:     %s\n", img.store)
	fmt.Printf("created:   %s\n", ix.Created.Format(time.RFC3339))
	fmt.Printf("expires:   %s\n", expires)
	fmt.Printf("size:      %s (%d bytes)\n", units.Bytes(ix.Size), ix.Size)
	fmt.Printf("chunking:  %s\n", ix.Chunking)
	fmt.Printf("chunks:    %d (%d unique), %d zero runs covering %s\n", st.Chunks, st.Unique, st.Zero, units.Bytes(st.ZeroBytes))
	fmt.Printf("stored:    %s compressed for %s of data (%.1f%%)\n", units.Bytes(st.StoredBytes), units.Bytes(st.DataBytes),
		percent(st.StoredBytes, st.DataBytes))
	fmt.Printf("index:     %s\n", units.Bytes(int64(len(img.file))))
	if n := len(ix.Profile.Entries); n > 0 {
		var b int64
		for _, i := range ix.Profile.Entries {
			b += int64(ix.Entries[i].Stored)
		}
		fmt.Printf("profile:   %s (%s to fetch) from %s\n", units.Count(n, "chunk"), units.Bytes(b), units.Count(ix.Profile.Boots, "recorded boot"))
	} else {
		fmt.Printf("profile:   none\n")
	}
	fmt.Printf("signed:    %s\n", signed)
	return nil
}

func percent(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
