package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/units"
)

func newCacheCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Show or trim a chunk cache directory (--cache of mount and extract)",
	}
	var asJSON bool
	stats := &cobra.Command{
		Use:     "stats DIR",
		Short:   "Show what a cache holds",
		Example: `  nowhere cache stats /var/cache/nowhere`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runCacheStats(args[0], asJSON) },
	}
	stats.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(stats)
	var to string
	var verify bool
	prune := &cobra.Command{
		Use:   "prune DIR",
		Short: "Remove least recently used chunks until the cache is within a size",
		Example: `  nowhere cache prune /var/cache/nowhere --to 1G
  nowhere cache prune /var/cache/nowhere --to 0        # empty it
  nowhere cache prune /var/cache/nowhere --verify      # drop corrupt chunks only`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCachePrune(cmd.Context(), args[0], to, verify, cmd.Flags().Changed("to"))
		},
	}
	sizeVar(prune.Flags(), &to, "to", "", "size to trim the cache to")
	prune.Flags().BoolVar(&verify, "verify", false, "first check every chunk and drop the corrupt ones")
	cmd.AddCommand(prune)
	return cmd
}

// openExistingCache opens a cache directory for inspection, refusing to create one.
func openExistingCache(dir string) (*store.DiskCache, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, unwrapPathError(err))
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("cache %s: not a directory", dir)
	}
	return store.OpenDiskCache(dir, 0, logf, nil)
}

// cacheStatsJSON is cache stats --json; the times only when the cache holds chunks.
type cacheStatsJSON struct {
	Cache  string     `json:"cache"`
	Chunks int        `json:"chunks"`
	Bytes  int64      `json:"bytes"`
	Oldest *time.Time `json:"least_recently_used,omitempty"`
	Newest *time.Time `json:"most_recently_used,omitempty"`
}

func runCacheStats(dir string, asJSON bool) error {
	c, err := openExistingCache(dir)
	if err != nil {
		return err
	}
	defer c.Close()
	st := c.Stats()
	if asJSON {
		j := cacheStatsJSON{Cache: dir, Chunks: st.Chunks, Bytes: st.Bytes}
		if st.Chunks > 0 {
			j.Oldest, j.Newest = &st.Oldest, &st.Newest
		}
		return printJSON(j)
	}
	fmt.Printf("cache:   %s\n", dir)
	fmt.Printf("chunks:  %d\n", st.Chunks)
	fmt.Printf("size:    %s (%d bytes)\n", units.Bytes(st.Bytes), st.Bytes)
	if st.Chunks > 0 {
		fmt.Printf("used:    least recently %s, most recently %s\n", st.Oldest.Format(time.RFC3339), st.Newest.Format(time.RFC3339))
	}
	return nil
}

func runCachePrune(ctx context.Context, dir, to string, verify, haveTo bool) error {
	if !haveTo && !verify {
		return fmt.Errorf("cache prune: give --to SIZE, --verify, or both")
	}
	var target int64
	if haveTo {
		var err error
		if target, err = units.ParseBytes(to); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	c, err := openExistingCache(dir)
	if err != nil {
		return err
	}
	defer c.Close()
	if verify {
		bad, err := c.Verify(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("verified: %d corrupt chunks dropped\n", bad)
	}
	if haveTo {
		n, freed := c.Prune(target)
		st := c.Stats()
		fmt.Printf("pruned: %s (%s) removed; %s (%s) left\n", units.Count(n, "chunk"), units.Bytes(freed), units.Count(st.Chunks, "chunk"), units.Bytes(st.Bytes))
	}
	return nil
}
