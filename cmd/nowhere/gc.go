package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/gc"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type gcOptions struct {
	keep       int
	keepWithin time.Duration
	grace      time.Duration
	dryRun     bool
	list       bool
	json       bool
	key        string
	password   string
}

func newGCCommand() *cobra.Command {
	var o gcOptions
	cmd := &cobra.Command{
		Use:   "gc STORE [--keep N] [--keep-within DURATION]",
		Short: "Remove old versions and the chunks no kept version references",
		Long: `Gc keeps the newest --keep versions of every image in STORE (a directory or
s3://BUCKET/PREFIX), of each architecture an image is published for, and always the ones
latest and latest.ARCH point to; it also keeps every version that was current within
--keep-within (published, or replaced by a newer one, that recently): a machine that
booted a version keeps reading that version's chunks for as long as it runs, so the
window is how long a machine may stay up without a reboot. It removes the other
versions' index files, then every chunk that no kept version references. The default
policy is --keep 3 --keep-within 7d; --dry-run says which versions only the window keeps.

A pack or sync into the same store may run at the same time: they hold the store's lock
shared, gc holds it exclusive (a flock on STORE/.nowhere-lock in a directory, marker
objects under .nowhere-lock/ in a bucket), so gc never removes a chunk that an index
about to be published needs. Chunks modified within --grace are kept anyway (for writers
that take no lock: another host writing over NFS without flock, other tools). Temporary files that an interrupted pack or sync
left in a directory store are removed once older than --grace too. Signed versions
files are re-signed with --sign-key.`,
		Example: `  nowhere gc ./store --dry-run
  nowhere gc ./store --keep 3 --keep-within 30d --dry-run
  nowhere gc ./store --keep 3 --dry-run --list
  nowhere gc /srv/nowhere --keep 2 --sign-key publisher.key --password-file pw`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGC(cmd.Context(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.keep, "keep", 3, "versions to keep per image and architecture (at least 1)")
	durationVar(f, &o.keepWithin, "keep-within", defaultKeepWithin, "also keep every version current (published, or replaced) within this long: how long a machine may stay up on a version (0: no window)")
	durationVar(f, &o.grace, "grace", time.Hour, "keep unreferenced chunks modified more recently than this")
	f.BoolVar(&o.dryRun, "dry-run", false, "only show what would be removed")
	f.BoolVar(&o.list, "list", false, "also print every chunk and temporary file removed (or, with --dry-run, that would be)")
	f.BoolVar(&o.json, "json", false, "print JSON (the chunks and temporary files removed, or that would be, always listed)")
	f.StringVar(&o.key, "sign-key", "", "secret key to re-sign the versions files of signed images")
	deprecatedAlias(f, "gc", "key", "sign-key")
	f.StringVar(&o.password, "password-file", "", "the secret key's password is the first line of this file")
	return cmd
}

// defaultKeepWithin is gc's window: a machine rebooted at least weekly never loses the
// chunks of the version it runs (docs/updates.md).
const defaultKeepWithin = 7 * 24 * time.Hour

// gcJSON is gc --json: the summary's counts, sizes in bytes, and what --list lists.
type gcJSON struct {
	Store           string   `json:"store"`
	DryRun          bool     `json:"dry_run"`
	Images          int      `json:"images"`
	KeptVersions    []string `json:"kept_versions"`
	RemovedVersions []string `json:"removed_versions"` // or, with dry_run, that would be
	WindowVersions  []string `json:"kept_only_by_keep_within"`
	Referenced      int      `json:"referenced_chunks"`
	RemovedChunks   []string `json:"removed_chunks"`
	RemovedBytes    int64    `json:"removed_bytes"`
	YoungChunks     int      `json:"grace_kept_chunks"`
	YoungBytes      int64    `json:"grace_kept_bytes"`
	RemovedTemps    []string `json:"removed_temporary_files"`
	TempBytes       int64    `json:"removed_temporary_bytes"`
	YoungTemps      int      `json:"grace_kept_temporary_files"`
}

// nonNil keeps an empty list a list ([]) in JSON, not null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func runGC(ctx context.Context, loc string, o gcOptions) error {
	if o.keep < 1 {
		return fmt.Errorf("--keep must be at least 1")
	}
	var signer catalog.Signer
	if o.key != "" {
		k, err := trust.LoadSecretKey(o.key, func() (string, error) {
			return readPassword(o.password, "password for "+o.key+": ")
		})
		if err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
		signer = k
	}
	var s gc.Store
	if store.IsS3(loc) {
		s3, err := openS3(loc)
		if err != nil {
			return err
		}
		s = s3
	} else {
		d, err := store.OpenDir(loc)
		if err != nil {
			return err
		}
		defer d.Close()
		s = d
	}
	lk, err := lockStore(ctx, s, loc, true)
	if err != nil {
		return err
	}
	defer lk.unlock()
	res, err := gc.Run(lk.ctx, s, gc.Options{Keep: o.keep, KeepWithin: o.keepWithin, Grace: o.grace, DryRun: o.dryRun, Signer: signer, Held: lk.held})
	if err != nil {
		return fmt.Errorf("gc %s: %w", loc, lk.explain(err))
	}
	if o.json {
		j := gcJSON{
			Store: loc, DryRun: o.dryRun, Images: res.Images,
			KeptVersions: nonNil(res.KeptVersions), RemovedVersions: nonNil(res.RemovedVersions), WindowVersions: nonNil(res.WindowVersions),
			Referenced: res.Referenced, RemovedChunks: []string{}, RemovedBytes: res.RemovedBytes,
			YoungChunks: res.Young, YoungBytes: res.YoungBytes,
			RemovedTemps: nonNil(res.RemovedTemps), TempBytes: res.TempBytes, YoungTemps: res.YoungTemps,
		}
		for _, id := range res.RemovedChunks {
			j.RemovedChunks = append(j.RemovedChunks, store.ChunkPath(id))
		}
		return printJSON(j)
	}
	verb := "removed"
	if o.dryRun {
		verb = "would remove"
	}
	fmt.Printf("gc %s: %s; keeping %s (%s)\n", loc, units.Count(res.Images, "image"), units.Count(len(res.KeptVersions), "version"), strings.Join(res.KeptVersions, " "))
	fmt.Printf("  versions: %s %d (%s)\n", verb, len(res.RemovedVersions), strings.Join(res.RemovedVersions, " "))
	if len(res.WindowVersions) > 0 {
		fmt.Printf("  kept only by --keep-within %s (current that recently; a machine may still run them): %s\n",
			o.keepWithin, strings.Join(res.WindowVersions, " "))
	}
	fmt.Printf("  chunks:   %d referenced; %s %d (%s); %d unreferenced kept for the %s grace period (%s)\n",
		res.Referenced, verb, res.Removed, units.Bytes(res.RemovedBytes), res.Young, o.grace, units.Bytes(res.YoungBytes))
	if res.Temps > 0 || res.YoungTemps > 0 {
		fmt.Printf("  temporary files of interrupted writers: %s %d (%s); %d kept for the grace period\n",
			verb, res.Temps, units.Bytes(res.TempBytes), res.YoungTemps)
	}
	if o.list {
		for _, id := range res.RemovedChunks {
			fmt.Printf("%s %s\n", verb, store.ChunkPath(id))
		}
		for _, name := range res.RemovedTemps {
			fmt.Printf("%s %s\n", verb, name)
		}
	}
	return nil
}
