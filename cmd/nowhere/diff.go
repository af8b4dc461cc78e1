package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type diffOptions struct {
	store string
	cache string
	json  bool
	trust trustOptions
	// sources are the --mirror flags, for the one store the arguments name.
	sources sourceOptions
}

func newDiffCommand() *cobra.Command {
	o := diffOptions{sources: sourceOptions{quietProbe: true, timeout: time.Minute}}
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "What moving from one image version to another costs: chunks and bytes to fetch",
		Long: `Diff compares two image versions and prints what a client that holds OLD fetches to
get NEW: the distinct chunks of NEW that OLD lacks and their compressed bytes, and, with
--cache DIR, what remains once the chunks that cache already holds are counted too.

OLD and NEW are each an index file, STORE/images/NAME[/VERSION] (STORE a directory, an
http(s) URL or s3://BUCKET/PREFIX), or NAME or NAME@VERSION in the store given by --store
(default: the store of the other argument). Indexes are verified like every reader does
(--key, or --insecure), and read through the store's mirror set: --mirror URL adds
sources of that store, tried when it does not answer (docs/mirrors.md).`,
		Example: `  nowhere diff http://127.0.0.1:8080/images/debian/1 http://127.0.0.1:8080/images/debian --key publisher.pub
  nowhere diff debian@1 debian@2 --store ./store --key publisher.pub --cache /var/cache/nowhere
  nowhere diff old.index ./store/images/debian --insecure --json
  nowhere diff debian@1 debian@2 --store http://mirror-a.example/nowhere --mirror http://mirror-b.example/nowhere --key publisher.pub`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.trust.warnInsecure()
			return runDiff(cmd.Context(), args[0], args[1], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "", "the store NAME and NAME@VERSION arguments refer to")
	f.StringVar(&o.cache, "cache", "", "also count the chunks this cache directory (or store directory) holds")
	f.BoolVar(&o.json, "json", false, "print JSON")
	o.sources.addFlags(f, false)
	o.trust.addFlags(f)
	return cmd
}

// diffSide is one of the two versions compared.
type diffSide struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	Size    int64  `json:"size"`
	Unique  int    `json:"unique_chunks"`
	Stored  int64  `json:"stored_bytes"`
	From    string `json:"from"`
}

// DiffResult is what diff prints (and what --json encodes).
type diffResult struct {
	Old          diffSide   `json:"old"`
	New          diffSide   `json:"new"`
	SharedChunks int        `json:"shared_chunks"`
	SharedBytes  int64      `json:"shared_bytes"`
	FetchChunks  int        `json:"fetch_chunks"`
	FetchBytes   int64      `json:"fetch_bytes"`
	FetchPlain   int64      `json:"fetch_plain_bytes"`
	Cache        *diffCache `json:"cache,omitempty"`
}

type diffCache struct {
	Dir         string `json:"dir"`
	HeldChunks  int    `json:"held_chunks"` // of NEW's distinct chunks
	FetchChunks int    `json:"fetch_chunks"`
	FetchBytes  int64  `json:"fetch_bytes"`
}

// diffArg is how an argument names an index.
type diffArg struct {
	file string         // a local index file
	loc  image.Location // else a location (Store may be empty: --store or the other side's)
}

func parseDiffArg(arg string) (diffArg, error) {
	if st, err := os.Stat(arg); err == nil && st.Mode().IsRegular() {
		return diffArg{file: arg}, nil
	}
	if strings.Contains(arg, "/images/") || strings.HasPrefix(arg, "images/") {
		loc, err := image.ParseLocation(arg)
		return diffArg{loc: loc}, err
	}
	name, ver, hasVer := strings.Cut(arg, "@")
	if err := index.ValidName(name); err != nil {
		return diffArg{}, fmt.Errorf("%q: not an index file, STORE/images/NAME[/VERSION], NAME or NAME@VERSION: %v", arg, err)
	}
	loc := image.Location{Name: name}
	if hasVer {
		v, err := strconv.ParseUint(ver, 10, 64)
		if err != nil || v == 0 {
			return diffArg{}, fmt.Errorf("%q: version %q is not a positive number", arg, ver)
		}
		loc.Version = v
	}
	return diffArg{loc: loc}, nil
}

// readerVerifier is the verifier of the reading verbs without a rollback memory: diff
// only looks, it moves no machine to a version.
func readerVerifier(t *trustOptions) (*trust.Verifier, error) {
	specs := t.keys
	if len(specs) == 0 {
		if _, err := os.Stat(trust.DefaultKeyFile); err == nil {
			specs = []string{trust.DefaultKeyFile}
		}
	}
	keys, err := trust.LoadKeys(specs)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	return trust.NewVerifier(trust.Policy{Keys: keys, Insecure: t.insecure, Warn: logf})
}

// readIndexFile reads an index file given by path, refusing one larger than any index
// (index.MaxFile) before reading it, as a store's File does.
func readIndexFile(path string) ([]byte, error) {
	// O_NONBLOCK: a FIFO given by mistake is refused below instead of blocking the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathError(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathError(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > index.MaxFile {
		return nil, &store.TooLargeError{What: path, Limit: index.MaxFile}
	}
	file := make([]byte, st.Size())
	if _, err := io.ReadFull(f, file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathError(err))
	}
	return file, nil
}

// loadDiffSide loads and verifies the index an argument names, from a file or through
// the store's sources (stores holds them by location).
func loadDiffSide(ctx context.Context, a diffArg, v *trust.Verifier, stores map[string]store.Store) (*index.Index, string, error) {
	if a.file != "" {
		file, err := readIndexFile(a.file)
		if err != nil {
			return nil, "", err
		}
		ix, err := index.Decode(file)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", a.file, err)
		}
		if err := v.Check(ix, file, ix.Name, ix.Version); err != nil {
			return nil, "", fmt.Errorf("%s: %w", a.file, err)
		}
		return ix, a.file, nil
	}
	ix, _, err := image.LoadVerified(ctx, stores[a.loc.Store], a.loc, openPolicy, v)
	if err != nil {
		return nil, "", err
	}
	return ix, a.loc.String(), nil
}

func runDiff(ctx context.Context, oldArg, newArg string, o diffOptions) error {
	args := make([]diffArg, 2)
	for i, s := range []string{oldArg, newArg} {
		a, err := parseDiffArg(s)
		if err != nil {
			return err
		}
		args[i] = a
	}
	// A bare NAME[@VERSION] takes --store, else the store of the other argument.
	for i := range args {
		if args[i].file != "" || args[i].loc.Store != "" {
			continue
		}
		switch other := args[1-i]; {
		case o.store != "":
			args[i].loc.Store = o.store
		case other.file == "" && other.loc.Store != "":
			args[i].loc.Store = other.loc.Store
		default:
			return fmt.Errorf("%q names an image without a store: give --store STORE", []string{oldArg, newArg}[i])
		}
	}
	v, err := readerVerifier(&o.trust)
	if err != nil {
		return err
	}
	httpOpt, err := o.trust.storeOptions()
	if err != nil {
		return err
	}
	stores, err := openDiffStores(ctx, args, o.sources, httpOpt)
	defer func() {
		for _, so := range stores {
			so.close()
		}
	}()
	if err != nil {
		return err
	}
	opened := map[string]store.Store{}
	for loc, so := range stores {
		opened[loc] = so.store
	}
	oldIx, oldFrom, err := loadDiffSide(ctx, args[0], v, opened)
	if err != nil {
		return err
	}
	newIx, newFrom, err := loadDiffSide(ctx, args[1], v, opened)
	if err != nil {
		return err
	}
	var cache *store.Dir
	if o.cache != "" {
		if cache, err = store.OpenDir(o.cache); err != nil {
			return fmt.Errorf("--cache: %w", err)
		}
		defer cache.Close()
	}
	res, err := diffIndexes(ctx, oldIx, newIx, cache)
	if err != nil {
		return err
	}
	res.Old.From, res.New.From = oldFrom, newFrom
	if o.json {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	printDiff(res)
	return nil
}

// diffStore is one store diff reads indexes from, with its sources.
type diffStore struct {
	sourceOptions
	store store.Store
}

// openDiffStores opens each store the arguments name (usually one) as a mirror set.
// --mirror adds sources to a store, so it needs exactly one to add them to.
func openDiffStores(ctx context.Context, args []diffArg, so sourceOptions, httpOpt store.HTTPOptions) (map[string]*diffStore, error) {
	var locs []string
	for _, a := range args {
		if a.file == "" && !slices.Contains(locs, a.loc.Store) {
			locs = append(locs, a.loc.Store)
		}
	}
	if len(so.mirrors) > 0 && len(locs) != 1 {
		if len(locs) == 0 {
			return nil, fmt.Errorf("--mirror: both arguments are index files, there is no store to add mirrors to")
		}
		return nil, fmt.Errorf("--mirror: the arguments name two stores (%s and %s); give --mirror only with one store", locs[0], locs[1])
	}
	out := map[string]*diffStore{}
	for _, loc := range locs {
		ds := &diffStore{sourceOptions: so}
		out[loc] = ds
		s, err := ds.openStore(ctx, loc, httpOpt)
		if err != nil {
			return out, err
		}
		ds.store = s
	}
	return out, nil
}

// diffIndexes counts what a client holding old (and the chunks in cache, if any) fetches
// to read all of new: each distinct chunk once.
func diffIndexes(ctx context.Context, old, new *index.Index, cache *store.Dir) (*diffResult, error) {
	have := make(map[chunk.ID]bool, len(old.Entries))
	for _, e := range old.Entries {
		if !e.Zero {
			have[e.ID] = true
		}
	}
	side := func(ix *index.Index) diffSide {
		st := ix.Stats()
		return diffSide{Name: ix.Name, Version: ix.Version, Size: ix.Size, Unique: st.Unique, Stored: st.StoredBytes}
	}
	res := &diffResult{Old: side(old), New: side(new)}
	if cache != nil {
		res.Cache = &diffCache{Dir: cache.Path()}
	}
	seen := make(map[chunk.ID]bool, len(new.Entries))
	for _, e := range new.Entries {
		if e.Zero || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		inCache := false
		if cache != nil {
			_, ok, err := cache.HasChunk(ctx, e.ID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("--cache: %w", err)
			}
			inCache = ok
			if ok {
				res.Cache.HeldChunks++
			}
		}
		if have[e.ID] {
			res.SharedChunks++
			res.SharedBytes += int64(e.Stored)
			continue
		}
		res.FetchChunks++
		res.FetchBytes += int64(e.Stored)
		res.FetchPlain += int64(e.Len)
		if cache != nil && !inCache {
			res.Cache.FetchChunks++
			res.Cache.FetchBytes += int64(e.Stored)
		}
	}
	return res, nil
}

func printDiff(r *diffResult) {
	line := func(what string, s diffSide) {
		fmt.Printf("%s %s version %d: %s image, %d distinct chunks, %s stored (%s)\n", what, s.Name, s.Version,
			units.Bytes(s.Size), s.Unique, units.Bytes(s.Stored), s.From)
	}
	line("old:", r.Old)
	line("new:", r.New)
	fmt.Printf("in both:  %s, %s\n", units.Count(r.SharedChunks, "chunk"), units.Bytes(r.SharedBytes))
	fmt.Printf("to fetch: %s, %s compressed (%s of data; %.1f%% of the new version's %s)\n", units.Count(r.FetchChunks, "chunk"),
		units.Bytes(r.FetchBytes), units.Bytes(r.FetchPlain), percent(r.FetchBytes, r.New.Stored), units.Bytes(r.New.Stored))
	if c := r.Cache; c != nil {
		fmt.Printf("with the cache %s (holds %d of the new version's chunks): %d chunks, %s to fetch\n",
			c.Dir, c.HeldChunks, c.FetchChunks, units.Bytes(c.FetchBytes))
	}
}
