package pack

import (
	"context"
	"fmt"
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
// index is written, then the image's versions file lists it, then the latest pointer
// moves to it, then the store's catalogue names the image. Each write is atomic.
func Publish(ctx context.Context, w store.Writer, ix *index.Index, file []byte) error {
	_, err := PublishSigned(ctx, w, ix, file, nil)
	return err
}

// PublishSigned is Publish with the index and the pointer signed by s (nil: unsigned). It
// returns the index file as published.
func PublishSigned(ctx context.Context, w store.Writer, ix *index.Index, file []byte, s Signer) ([]byte, error) {
	if sy, ok := w.(syncer); ok {
		if err := sy.Sync(); err != nil {
			return nil, err
		}
	}
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
	if err := put(store.IndexPath(ix.Name, ix.Version)+SignatureSuffix, indexSig); err != nil {
		return nil, err
	}
	if err := put(store.IndexPath(ix.Name, ix.Version), file); err != nil {
		return nil, err
	}
	var cs catalog.Signer
	if s != nil {
		cs = s
	}
	if err := catalog.WriteVersions(ctx, w, vs, cs); err != nil {
		return nil, err
	}
	if err := put(store.LatestPath(ix.Name)+SignatureSuffix, ptrSig); err != nil {
		return nil, err
	}
	if err := put(store.LatestPath(ix.Name), ptrFile); err != nil {
		return nil, err
	}
	if err := catalog.WriteNames(ctx, w); err != nil {
		return nil, err
	}
	return file, nil
}
