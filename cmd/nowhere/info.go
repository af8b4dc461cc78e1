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
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info SOURCE",
		Short: "Describe an image: name, version, size, chunking, chunks and stored bytes",
		Example: `  nowhere info ./store/images/debian --key publisher.pub
  nowhere info http://127.0.0.1:8080/images/debian/2 --key RWQ...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t.warnInsecure()
			return runInfo(cmd.Context(), args[0], so, &t, asJSON)
		},
	}
	so.addFlags(cmd.Flags(), false)
	t.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// infoJSON is info --json: what the text says, sizes in bytes.
type infoJSON struct {
	Name          string     `json:"name"`
	Version       uint64     `json:"version"`
	Arch          string     `json:"arch"`
	Store         string     `json:"store"`
	Created       time.Time  `json:"created"`
	Expires       *time.Time `json:"expires,omitempty"`
	Size          int64      `json:"size"`
	Chunking      string     `json:"chunking"`
	Chunks        int        `json:"chunks"`
	Unique        int        `json:"unique"`
	ZeroRuns      int        `json:"zero_runs"`
	ZeroBytes     int64      `json:"zero_bytes"`
	StoredBytes   int64      `json:"stored_bytes"`
	DataBytes     int64      `json:"data_bytes"`
	IndexBytes    int64      `json:"index_bytes"`
	ProfileChunks int        `json:"profile_chunks"`
	ProfileBytes  int64      `json:"profile_bytes"`
	ProfileBoots  uint32     `json:"profile_boots"`
	Signed        string     `json:"signed"`
}

func runInfo(ctx context.Context, src string, so *sourceOptions, t *trustOptions, asJSON bool) error {
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
	var profileBytes int64
	for _, i := range ix.Profile.Entries {
		profileBytes += int64(ix.Entries[i].Stored)
	}
	if asJSON {
		j := infoJSON{
			Name: ix.Name, Version: ix.Version, Arch: ix.ArchOrAny(), Store: img.store.String(),
			Created: ix.Created, Size: ix.Size, Chunking: ix.Chunking.String(),
			Chunks: st.Chunks, Unique: st.Unique, ZeroRuns: st.Zero, ZeroBytes: st.ZeroBytes,
			StoredBytes: st.StoredBytes, DataBytes: st.DataBytes, IndexBytes: int64(len(img.file)),
			ProfileChunks: len(ix.Profile.Entries), ProfileBytes: profileBytes, ProfileBoots: ix.Profile.Boots,
			Signed: signed,
		}
		if !ix.Expires.IsZero() {
			j.Expires = &ix.Expires
		}
		return printJSON(j)
	}
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
		fmt.Printf("profile:   %s (%s to fetch) from %s\n", units.Count(n, "chunk"), units.Bytes(profileBytes), units.Count(ix.Profile.Boots, "recorded boot"))
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
