package pack

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// syncer is implemented by stores that can flush written chunks to stable storage.
type syncer interface{ Sync() error }

// NextVersion returns one more than the highest version of name in the store.
func NextVersion(ctx context.Context, w store.Writer, name string) (uint64, error) {
	files, err := w.Files(ctx, "images/"+name+"/")
	if err != nil {
		return 0, fmt.Errorf("store %s: listing images/%s: %w", w, name, err)
	}
	var max uint64
	for _, f := range files {
		base := path.Base(f)
		if !strings.HasSuffix(base, ".index") {
			continue
		}
		if v, err := strconv.ParseUint(strings.TrimSuffix(base, ".index"), 10, 64); err == nil && v > max {
			max = v
		}
	}
	return max + 1, nil
}

// Signer signs what Publish writes (internal/trust's SecretKey implements it). Each method
// returns the signed file and a detached signature of it, which Publish writes beside the
// file as FILE.minisig for tools that know nothing of nowhere (minisign -V).
type Signer interface {
	SignIndex(ix *index.Index, file []byte) (signed, detached []byte, err error)
	SignPointer(p index.Pointer) (signed, detached []byte, err error)
	// Sign signs a text file (the catalogue's versions file) with a trusted comment.
	Sign(msg []byte, trustedComment string) []byte
}

// SignatureSuffix names a detached signature file beside the file it signs.
const SignatureSuffix = ".minisig"

// Publish makes an encoded index visible: chunks are flushed first, then the versioned
// index is written, then the image's versions file lists it, then the latest pointers
// move to it, then the store's catalogue names the image. Each write is atomic.
//
// An index of an architecture (amd64, arm64) moves latest.ARCH, where each machine of a
// multi-architecture image finds its own. It moves latest too unless it is for another
// architecture than amd64 and latest already names another architecture's index (or
// one for any): the clients that know only latest predate arm64 support and are all
// x86-64, so latest stays theirs. An index for any architecture moves latest alone.
func Publish(ctx context.Context, w store.Writer, ix *index.Index, file []byte) error {
	_, err := PublishSigned(ctx, w, ix, file, nil)
	return err
}

// PublishSigned is Publish with the index and the pointer signed by s (nil: unsigned). It
// returns the index file as published. In a store that can create files exclusively
// (store.ExclusiveWriter: a directory; a bucket whose service honours If-None-Match),
// the version is claimed by creating its index file: when a concurrent pack claimed it
// first, this one takes the next number, re-encoding and re-signing the index, so two
// packs at once publish two versions.
func PublishSigned(ctx context.Context, w store.Writer, ix *index.Index, file []byte, s Signer) ([]byte, error) {
	if sy, ok := w.(syncer); ok {
		if err := sy.Sync(); err != nil {
			return nil, err
		}
	}
	for claims := 0; ; claims++ {
		published, err := publishVersion(ctx, w, ix, file, s)
		if !errors.Is(err, fs.ErrExist) {
			return published, err
		}
		if claims >= maxClaims {
			return nil, fmt.Errorf("store %s: %d versions of %s claimed by other packs while this one tried: giving up", w, claims+1, ix.Name)
		}
		next, nerr := NextVersion(ctx, w, ix.Name)
		if nerr != nil {
			return nil, nerr
		}
		ix.Version = max(next, ix.Version+1)
		if file, err = index.Encode(ix); err != nil {
			return nil, err
		}
	}
}

// maxClaims bounds how often a pack takes the next version after losing one to another.
const maxClaims = 64

// publishVersion publishes ix as its version; fs.ErrExist when an exclusive store already
// holds that version's index (nothing else written then).
func publishVersion(ctx context.Context, w store.Writer, ix *index.Index, file []byte, s Signer) ([]byte, error) {
	ptr := index.NewPointer(ix, file)
	ptrFile := ptr.Encode()
	var indexSig, ptrSig []byte
	if s != nil {
		var err error
		if file, indexSig, err = s.SignIndex(ix, file); err != nil {
			return nil, fmt.Errorf("signing %s: %w", store.IndexPath(ix.Name, ix.Version), err)
		}
		ptr = index.NewPointer(ix, file) // the pointer pins the signed file
		if ptrFile, ptrSig, err = s.SignPointer(ptr); err != nil {
			return nil, fmt.Errorf("signing %s: %w", store.LatestPath(ix.Name), err)
		}
	}
	// The versions file is prepared before anything is written: a failure (or a
	// cancellation) here leaves the store as it was.
	d := catalog.Describe(ix, file)
	vs, err := catalog.Rebuild(ctx, w, ix.Name, &d)
	if err != nil {
		return nil, err
	}
	moveLatest := true
	if ix.Arch != "" && ix.Arch != "amd64" {
		cur, exists, err := latestArch(ctx, w, ix.Name, vs)
		if err != nil {
			return nil, err
		}
		moveLatest = !exists || cur == ix.Arch
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Detached signatures go first: the moment a file is visible, so is its signature.
	put := func(name string, data []byte) error {
		if data == nil {
			return nil
		}
		return w.PutFile(ctx, name, data)
	}
	claimed := false
	if ew, ok := w.(store.ExclusiveWriter); ok {
		// The index claims the version: created only if no other pack did, its detached
		// signature after it (never overwriting the winner's).
		err := ew.CreateFile(ctx, store.IndexPath(ix.Name, ix.Version), file)
		switch {
		case err == nil:
			claimed = true
			if err := put(store.IndexPath(ix.Name, ix.Version)+SignatureSuffix, indexSig); err != nil {
				return nil, err
			}
		case !errors.Is(err, store.ErrNoExclusiveCreate):
			return nil, err
		}
		// ErrNoExclusiveCreate (an S3 service that ignores conditional writes; the store
		// warned): nothing written, published as by a store that never claims.
	}
	if !claimed {
		if err := put(store.IndexPath(ix.Name, ix.Version)+SignatureSuffix, indexSig); err != nil {
			return nil, err
		}
		if err := put(store.IndexPath(ix.Name, ix.Version), file); err != nil {
			return nil, err
		}
	}
	var cs catalog.Signer
	if s != nil {
		cs = s
	}
	if err := catalog.WriteVersions(ctx, w, vs, cs); err != nil {
		return nil, err
	}
	var pointers []string
	if ix.Arch != "" {
		pointers = append(pointers, store.LatestArchPath(ix.Name, ix.Arch))
	}
	if moveLatest {
		pointers = append(pointers, store.LatestPath(ix.Name))
	}
	for _, p := range pointers {
		if err := put(p+SignatureSuffix, ptrSig); err != nil {
			return nil, err
		}
		if err := put(p, ptrFile); err != nil {
			return nil, err
		}
	}
	if err := catalog.WriteNames(ctx, w); err != nil {
		return nil, err
	}
	return file, nil
}

// latestArch is the architecture of the index image name's latest pointer names now, as
// its versions file vs says ("": any), and whether there is such a pointer. One that
// cannot be read or names no listed version counts as none: publishing replaces it.
func latestArch(ctx context.Context, w store.Writer, name string, vs *catalog.Versions) (string, bool, error) {
	version, ok, err := catalog.PointedVersion(ctx, w, store.LatestPath(name), name)
	if err != nil {
		return "", false, fmt.Errorf("store %s: reading %s: %w", w, store.LatestPath(name), err)
	}
	v, listed := vs.Find(version)
	if !ok || !listed {
		return "", false, nil
	}
	return v.Arch, true, nil
}
