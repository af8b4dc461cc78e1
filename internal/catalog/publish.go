package catalog

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// Signer signs a text file; the signature is appended to the text, as for the latest
// pointer (trust.SecretKey implements it).
type Signer interface {
	Sign(msg []byte, trustedComment string) []byte
}

// SignatureSuffix names the detached signature written beside a signed file (for
// minisign -V; nowhere reads the appended one).
const SignatureSuffix = ".minisig"

// maxIndexFile bounds an index file read back while rebuilding a versions file.
const maxIndexFile = index.MaxFile

// Listed returns the versions of image name that have an index file in the store, sorted.
func Listed(ctx context.Context, w store.Writer, name string) ([]uint64, error) {
	files, err := w.Files(ctx, "images/"+name+"/")
	if err != nil {
		return nil, fmt.Errorf("store %s: listing images/%s: %w", w, name, err)
	}
	var out []uint64
	for _, f := range files {
		if path.Dir(f) != "images/"+name {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSuffix(path.Base(f), ".index"), 10, 64)
		if strings.HasSuffix(f, ".index") && err == nil && v > 0 {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Names returns the images of a listable store that have a latest pointer, sorted.
func Names(ctx context.Context, w store.Writer) ([]string, error) {
	files, err := w.Files(ctx, "images/")
	if err != nil {
		return nil, fmt.Errorf("store %s: listing images/: %w", w, err)
	}
	var names []string
	for _, f := range files {
		parts := strings.Split(f, "/")
		if len(parts) == 3 && parts[0] == "images" && parts[2] == "latest" && index.ValidName(parts[1]) == nil {
			names = append(names, parts[1])
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Rebuild returns the versions of image name as the store holds them now: the entries of
// its current versions file whose index is still there, and a fresh description of every
// other index (read and decoded). extra, if set, describes an index about to be published
// or just published, and is taken as is.
func Rebuild(ctx context.Context, w store.Writer, name string, extra *Version) (*Versions, error) {
	listed, err := Listed(ctx, w, name)
	if err != nil {
		return nil, err
	}
	old := &Versions{Name: name}
	if b, err := w.File(ctx, VersionsPath(name), MaxVersions); err == nil {
		text, _ := trust.SplitPointer(b)
		if vs, perr := ParseVersions(text); perr == nil && vs.Name == name {
			old = vs
		} // a damaged file is rebuilt from the indexes
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	vs := &Versions{Name: name}
	for _, v := range listed {
		if extra != nil && v == extra.Version {
			continue
		}
		if d, ok := old.Find(v); ok {
			vs.Put(d)
			continue
		}
		file, err := w.File(ctx, store.IndexPath(name, v), maxIndexFile)
		if err != nil {
			return nil, err
		}
		ix, err := index.Decode(file)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", w, store.IndexPath(name, v), err)
		}
		vs.Put(Describe(ix, file))
	}
	if extra != nil {
		vs.Put(*extra)
	}
	return vs, nil
}

// WriteVersions publishes a versions file (signed when s is not nil), detached signature
// first so that the moment the file is visible, so is its signature.
func WriteVersions(ctx context.Context, w store.Writer, vs *Versions, s Signer) error {
	file := vs.Encode()
	p := VersionsPath(vs.Name)
	if s != nil {
		comment := fmt.Sprintf("nowhere versions %s", vs.Name)
		if n := len(vs.Versions); n > 0 {
			comment += fmt.Sprintf(" up to version %d", vs.Versions[n-1].Version)
		}
		file = append(file, s.Sign(file, comment)...)
		if err := w.PutFile(ctx, p+SignatureSuffix, s.Sign(file, comment)); err != nil {
			return err
		}
	}
	return w.PutFile(ctx, p, file)
}

// WriteNames rewrites images/catalog from the images the store holds. Two publishers of
// different new images racing may each write a list without the other's image; the next
// publication (or sync, or gc) lists both again.
func WriteNames(ctx context.Context, w store.Writer) error {
	names, err := Names(ctx, w)
	if err != nil {
		return err
	}
	return w.PutFile(ctx, NamesPath, EncodeNames(names))
}
