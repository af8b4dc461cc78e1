package main

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/units"
)

func newVerifyCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify DIR",
		Short: "Check every chunk of a store against its name and every index's references",
		Long: `Verify decompresses every chunk file and checks its content against its name, then
decodes every index (and latest pointer) and checks that each chunk it references is
present and sound. Each problem is printed on one line; the exit status is 1 if any.
Temporary files left by an interrupted pack or sync are warnings (nowhere gc removes
them), not problems.`,
		Example: `  nowhere verify ./store`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runVerify(cmd.Context(), args[0], asJSON) },
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the exit status is still 1 if there are problems)")
	return cmd
}

// verifyJSON is verify --json: the lines of the text output, and its summary's counts.
type verifyJSON struct {
	Store    string   `json:"store"`
	Chunks   int64    `json:"chunks"`
	Bytes    int64    `json:"bytes"`
	Indexes  int      `json:"indexes"`
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
}

func runVerify(ctx context.Context, dir string, asJSON bool) error {
	d, err := store.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	var (
		mu       sync.Mutex
		problems []string
		present  = make(map[chunk.ID]bool) // true: sound
	)
	report := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.NumCPU())
	var chunks, bytes int64
	err = d.Chunks(ctx, func(id chunk.ID, size int64) error {
		chunks++
		bytes += size
		g.Go(func() error {
			raw, err := d.Chunk(gctx, chunk.Ref{ID: id})
			ok := err == nil
			if err != nil {
				report("unreadable chunk %s: %v", store.ChunkPath(id), err)
			} else if _, err := chunk.DecodeUnknown(id, raw); err != nil {
				ok = false
				report("corrupt chunk %s: %v", store.ChunkPath(id), err)
			}
			mu.Lock()
			present[id] = ok
			mu.Unlock()
			return nil
		})
		return nil
	})
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}

	files, err := d.Files(ctx, "images/")
	if err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}
	sort.Strings(files)
	indexes := 0
	for _, name := range files {
		switch {
		case strings.HasSuffix(name, ".index"):
			indexes++
			verifyIndex(ctx, d, name, present, report)
		case strings.HasSuffix(name, "/latest"):
			verifyPointer(ctx, d, name, report)
		}
	}
	// Temporary files are not damage (no index refers to them, readers never see them),
	// but they take space until gc removes them: a warning, not a problem.
	var warnings []string
	err = d.TempFiles(ctx, func(f store.TempFile) error {
		warnings = append(warnings, fmt.Sprintf("warning: temporary file %s (%s, modified %s) left by an interrupted pack or sync; nowhere gc removes it",
			f.Name, units.Bytes(f.Size), f.Mod.UTC().Format(time.RFC3339)))
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}
	sort.Strings(warnings)
	if asJSON {
		j := verifyJSON{Store: dir, Chunks: chunks, Bytes: bytes, Indexes: indexes, Problems: problems, Warnings: []string{}}
		if j.Problems == nil {
			j.Problems = []string{}
		}
		for _, w := range warnings {
			j.Warnings = append(j.Warnings, strings.TrimPrefix(w, "warning: "))
		}
		if err := printJSON(j); err != nil {
			return err
		}
	} else {
		printVerify(dir, chunks, bytes, indexes, problems, warnings)
	}
	if len(problems) > 0 {
		return exitError{1, fmt.Errorf("verify %s: %s found", dir, units.Count(len(problems), "problem"))}
	}
	return nil
}

// printVerify prints verify's text: one line per problem and warning, then the summary.
func printVerify(dir string, chunks, bytes int64, indexes int, problems, warnings []string) {
	for _, p := range problems {
		fmt.Println(p)
	}
	for _, w := range warnings {
		fmt.Println(w)
	}
	summary := fmt.Sprintf("verified %s: %s (%d bytes), %s: %s", dir, units.Count(chunks, "chunk"), bytes, units.Count(indexes, "index"), units.Count(len(problems), "problem"))
	if len(warnings) > 0 {
		summary += ", " + units.Count(len(warnings), "warning")
	}
	fmt.Println(summary)
}

func verifyIndex(ctx context.Context, d *store.Dir, name string, present map[chunk.ID]bool, report func(string, ...any)) {
	file, err := d.File(ctx, name, index.MaxFile)
	if err != nil {
		report("unreadable index %s: %v", name, err)
		return
	}
	ix, err := index.Decode(file)
	if err != nil {
		report("bad index %s: %v", name, err)
		return
	}
	if want := store.IndexPath(ix.Name, ix.Version); want != name {
		report("misplaced index %s: holds %s version %d", name, ix.Name, ix.Version)
	}
	reported := make(map[chunk.ID]bool)
	for _, e := range ix.Entries {
		if e.Zero || reported[e.ID] {
			continue
		}
		sound, ok := present[e.ID]
		switch {
		case !ok:
			report("missing chunk %s referenced by %s at offset %d", store.ChunkPath(e.ID), name, e.Off)
			reported[e.ID] = true
		case !sound:
			report("index %s references corrupt chunk %s at offset %d", name, store.ChunkPath(e.ID), e.Off)
			reported[e.ID] = true
		}
	}
}

func verifyPointer(ctx context.Context, d *store.Dir, name string, report func(string, ...any)) {
	b, err := d.File(ctx, name, index.MaxPointer)
	if err != nil {
		report("unreadable pointer %s: %v", name, err)
		return
	}
	p, err := index.ParsePointer(b)
	if err != nil {
		report("bad pointer %s: %v", name, err)
		return
	}
	target := store.IndexPath(p.Name, p.Version)
	file, err := d.File(ctx, target, index.MaxFile)
	switch {
	case err != nil:
		report("pointer %s names %s: %v", name, target, err)
	case !p.Matches(file):
		report("pointer %s: sha256 does not match %s", name, target)
	}
}
