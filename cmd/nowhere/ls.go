package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type lsOptions struct {
	trust   trustOptions
	sources sourceOptions
	json    bool
}

func newLsCommand() *cobra.Command {
	o := lsOptions{sources: sourceOptions{quietProbe: true, timeout: time.Minute}}
	cmd := &cobra.Command{
		Use:   "ls SOURCE",
		Short: "List a store's images and versions",
		Long: `Ls lists the images of a store (a directory, an http(s) URL or s3://BUCKET/PREFIX), or
of one image (STORE/images/NAME), with every version's size, creation and expiry time,
chunk count, stored bytes, whether it is signed, and which version latest points to.

A directory or bucket is listed by reading its index files. Over HTTP, which has no
directory listings, ls reads the catalogue pack publishes (images/catalog and each
image's versions file, docs/format.md). With --key (or ` + trust.DefaultKeyFile + `) the
versions files, latest pointers and indexes must be signed by a trusted key; without any
key the listing is shown unverified.

With --mirror (and over HTTP, the mirrors the store lists) the files are read through the
mirror set: a source that does not answer is skipped for the next (docs/mirrors.md). The
listing then comes from the catalogue, as over HTTP.`,
		Example: `  nowhere ls ./store
  nowhere ls http://127.0.0.1:8080 --key publisher.pub
  nowhere ls http://127.0.0.1:8080/images/debian --json
  nowhere ls http://mirror-a.example/nowhere --mirror http://mirror-b.example/nowhere --key publisher.pub`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.trust.warnInsecure()
			defer o.sources.close()
			return runLs(cmd.Context(), args[0], &o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON (one object per image)")
	o.sources.addFlags(cmd.Flags(), false)
	o.trust.addFlags(cmd.Flags())
	return cmd
}

// lsImage is one image as ls prints it.
type lsImage struct {
	Name   string `json:"name"`
	Latest uint64 `json:"latest"`
	// LatestArch are the per-architecture pointers (latest.ARCH) of a multi-architecture
	// image: the version each names.
	LatestArch map[string]uint64 `json:"latest_arch,omitempty"`
	Versions   []lsVersion       `json:"versions"`
}

type lsVersion struct {
	Version  uint64    `json:"version"`
	Size     int64     `json:"size"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Chunks   int       `json:"chunks"`
	Unique   int       `json:"unique"`
	Stored   int64     `json:"stored"`
	Chunking string    `json:"chunking"`
	Signed   bool      `json:"signed"`
	Arch     string    `json:"arch"` // amd64, arm64, or any
	SHA256   string    `json:"sha256"`
}

// splitSource takes STORE or STORE/images/NAME[/VERSION] apart.
func splitSource(src string) (storeLoc, name string, version uint64, err error) {
	if !strings.Contains(src, "/images/") && !strings.HasPrefix(src, "images/") {
		return strings.TrimSuffix(src, "/"), "", 0, nil
	}
	loc, err := image.ParseLocation(src)
	if err != nil {
		return "", "", 0, err
	}
	return loc.Store, loc.Name, loc.Version, nil
}

// listVerifier is the verifier of --key, or nil when no key is given or installed (an
// unverified listing is still useful to the store's owner).
func listVerifier(t *trustOptions) (*trust.Verifier, error) {
	specs := t.keys
	if len(specs) == 0 {
		if _, err := os.Stat(trust.DefaultKeyFile); err == nil {
			specs = []string{trust.DefaultKeyFile}
		}
	}
	if len(specs) == 0 && !t.insecure {
		return nil, nil
	}
	keys, err := trust.LoadKeys(specs)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	return trust.NewVerifier(trust.Policy{Keys: keys, Insecure: t.insecure, Warn: logf})
}

func runLs(ctx context.Context, src string, o *lsOptions) error {
	storeLoc, name, version, err := splitSource(src)
	if err != nil {
		return err
	}
	v, err := listVerifier(&o.trust)
	if err != nil {
		return err
	}
	httpOpt, err := o.trust.storeOptions()
	if err != nil {
		return err
	}
	s, err := o.sources.openListed(ctx, storeLoc, httpOpt)
	if err != nil {
		return err
	}
	images, err := listStore(ctx, s, name, v)
	if err != nil {
		return err
	}
	if version != 0 {
		for i := range images {
			images[i].Versions = keepVersion(images[i].Versions, version)
			if len(images[i].Versions) == 0 {
				return fmt.Errorf("image %s has no version %d in %s", name, version, s)
			}
		}
	}
	if v == nil {
		logf("note: no --key: the listing is not verified")
	}
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		for _, im := range images {
			if err := enc.Encode(im); err != nil {
				return err
			}
		}
		return nil
	}
	printImages(images)
	return nil
}

func keepVersion(vs []lsVersion, v uint64) []lsVersion {
	for _, x := range vs {
		if x.Version == v {
			return []lsVersion{x}
		}
	}
	return nil
}

// listStore lists the images of s (only name, if given): by reading the index files when
// the store can be listed (a directory, a bucket), else from the published catalogue.
func listStore(ctx context.Context, s store.Store, name string, v *trust.Verifier) ([]lsImage, error) {
	w, listable := s.(store.Writer)
	var names []string
	switch {
	case name != "":
		names = []string{name}
	case listable:
		var err error
		if names, err = catalog.Names(ctx, w); err != nil {
			// A public bucket lets anyone read objects but not list them: use the
			// catalogue, as over HTTP.
			logf("%v: reading the catalogue instead", err)
			return listStore(ctx, readOnly{s}, name, v)
		}
	default:
		b, err := s.File(ctx, catalog.NamesPath, catalog.MaxNames)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%s has no %s (a store published before nowhere ls? pack, sync or gc it again to write one)", s, catalog.NamesPath)
		}
		if err != nil {
			return nil, err
		}
		if names, err = catalog.ParseNames(b); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", s, catalog.NamesPath, err)
		}
	}
	var out []lsImage
	var failed []string
	for _, n := range names {
		im, err := listImage(ctx, s, n, v)
		if err != nil {
			if name != "" {
				return nil, err
			}
			logf("%v", err) // one bad image does not hide the others
			failed = append(failed, n)
			continue
		}
		out = append(out, *im)
	}
	if len(failed) > 0 {
		printImages(out)
		return nil, fmt.Errorf("%d of %d images could not be listed: %s", len(failed), len(names), strings.Join(failed, ", "))
	}
	return out, nil
}

// listImage describes one image of s.
func listImage(ctx context.Context, s store.Store, n string, v *trust.Verifier) (*lsImage, error) {
	w, listable := s.(store.Writer)
	latest, err := readLatest(ctx, s, store.LatestPath(n), n, v)
	if err != nil {
		return nil, err
	}
	var vs *catalog.Versions
	if listable {
		vs, err = walkVersions(ctx, w, n, v)
	} else {
		vs, err = readVersions(ctx, s, n, v)
	}
	if err != nil {
		return nil, err
	}
	if latest != nil {
		if d, ok := vs.Find(latest.Version); ok && d.SHA256 != latest.SHA256 {
			return nil, fmt.Errorf("%s/%s: the latest pointer pins another index than the versions file lists for version %d (a torn or tampered store)", s, store.LatestPath(n), latest.Version)
		}
	}
	im := lsImage{Name: n}
	if latest != nil {
		im.Latest = latest.Version
	}
	arches := map[string]bool{}
	for _, d := range vs.Versions {
		arch := d.Arch
		if arch == "" {
			arch = "any"
		} else {
			arches[arch] = true
		}
		im.Versions = append(im.Versions, lsVersion{
			Version: d.Version, Size: d.Size, Created: d.Created, Expires: d.Expires, Chunks: d.Chunks,
			Unique: d.Unique, Stored: d.Stored, Chunking: d.Chunking, Signed: d.Signed, Arch: arch, SHA256: fmt.Sprintf("%x", d.SHA256),
		})
	}
	for _, a := range slices.Sorted(maps.Keys(arches)) {
		p, err := readLatest(ctx, s, store.LatestArchPath(n, a), n, v)
		if err != nil {
			return nil, err
		}
		if p == nil {
			continue
		}
		if d, ok := vs.Find(p.Version); !ok || d.SHA256 != p.SHA256 || d.Arch != a {
			return nil, fmt.Errorf("%s/%s: names version %d, which is not a listed %s version (a torn or tampered store)", s, store.LatestArchPath(n, a), p.Version, a)
		}
		if im.LatestArch == nil {
			im.LatestArch = map[string]uint64{}
		}
		im.LatestArch[a] = p.Version
	}
	return &im, nil
}

// readOnly hides a store's Writer methods (so it is listed through its catalogue).
type readOnly struct{ store.Store }

// readLatest returns the pointer file ptr of image name (latest or latest.ARCH; verified
// when v is set), or nil if the image has none.
func readLatest(ctx context.Context, s store.Store, ptr, name string, v *trust.Verifier) (*index.Pointer, error) {
	var pv catalog.PointerVerifier
	if v != nil {
		pv = v
	}
	_, p, err := catalog.ReadPointer(ctx, s, ptr, name, pv)
	return p, err
}

// readVersions fetches and checks an image's versions file.
func readVersions(ctx context.Context, s store.Store, name string, v *trust.Verifier) (*catalog.Versions, error) {
	p := catalog.VersionsPath(name)
	b, err := s.File(ctx, p, catalog.MaxVersions)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("image %q: %s has no %s", name, s, p)
	}
	if err != nil {
		return nil, err
	}
	if v != nil {
		if b, err = v.Text("versions file of "+name, b); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", s, p, err)
		}
	} else {
		b, _ = trust.SplitPointer(b)
	}
	vs, err := catalog.ParseVersions(b)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", s, p, err)
	}
	if vs.Name != name {
		return nil, fmt.Errorf("%s/%s: refused: lists image %q (mix-and-match)", s, p, vs.Name)
	}
	return vs, nil
}

// walkVersions reads every index of an image in a listable store, verifying each
// signature when v is set (an expired version is listed, not refused).
func walkVersions(ctx context.Context, w store.Writer, name string, v *trust.Verifier) (*catalog.Versions, error) {
	listed, err := catalog.Listed(ctx, w, name)
	if err != nil {
		return nil, err
	}
	if len(listed) == 0 {
		return nil, fmt.Errorf("image %q not found in %s", name, w)
	}
	vs := &catalog.Versions{Name: name}
	for _, ver := range listed {
		p := store.IndexPath(name, ver)
		file, err := w.File(ctx, p, image.MaxIndexFile)
		if err != nil {
			return nil, err
		}
		ix, err := index.Decode(file)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", w, p, err)
		}
		if v != nil {
			if err := v.Check(ix, file, name, ver); err != nil && !errors.Is(err, trust.ErrExpired) {
				return nil, fmt.Errorf("%s/%s: %w", w, p, err)
			}
		}
		if ix.Name != name || ix.Version != ver {
			return nil, fmt.Errorf("%s/%s: holds image %s version %d (mix-and-match)", w, p, ix.Name, ix.Version)
		}
		vs.Put(catalog.Describe(ix, file))
	}
	return vs, nil
}

func printImages(images []lsImage) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tVERSION\tLATEST\tARCH\tSIZE\tCREATED\tEXPIRES\tCHUNKS\tSTORED\tSIGNED")
	now := time.Now()
	for _, im := range images {
		for _, v := range im.Versions {
			var marks []string
			if v.Version == im.Latest {
				marks = append(marks, "latest")
			}
			if im.LatestArch[v.Arch] == v.Version && v.Version != im.Latest {
				marks = append(marks, "latest."+v.Arch)
			}
			latest := strings.Join(marks, ",")
			expires := "never"
			if !v.Expires.IsZero() {
				expires = v.Expires.UTC().Format(time.RFC3339)
				if now.After(v.Expires) {
					expires += " (expired)"
				}
			}
			signed := "no"
			if v.Signed {
				signed = "yes"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", im.Name, v.Version, latest, v.Arch, units.Bytes(v.Size),
				v.Created.UTC().Format(time.RFC3339), expires, v.Chunks, units.Bytes(v.Stored), signed)
		}
	}
	tw.Flush()
}
