package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// PointerVerifier checks a pointer file's signature and returns the text to parse
// (trust.Verifier implements it).
type PointerVerifier interface {
	Pointer(name string, raw []byte) ([]byte, error)
}

// ReadPointer fetches the pointer file ptr (store.LatestPath or store.LatestArchPath) of
// image name from s, at most index.MaxPointer bytes, checks it with v (nil: its signature,
// if any, is set aside unchecked) and parses it; a pointer for another image is refused
// (mix-and-match). It returns the raw file and the pointer, or nil, nil, nil when s has no
// such file. Every error names the file.
func ReadPointer(ctx context.Context, s store.Store, ptr, name string, v PointerVerifier) ([]byte, *index.Pointer, error) {
	raw, err := s.File(ctx, ptr, index.MaxPointer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	p, err := parsePointer(s, ptr, name, raw, v)
	if err != nil {
		return nil, nil, err
	}
	return raw, p, nil
}

// parsePointer checks (with v) and parses the pointer file ptr of image name.
func parsePointer(s store.Store, ptr, name string, raw []byte, v PointerVerifier) (*index.Pointer, error) {
	text, _ := trust.SplitPointer(raw)
	if v != nil {
		var err error
		if text, err = v.Pointer(name, raw); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", s, ptr, err)
		}
	}
	p, err := index.ParsePointer(text)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", s, ptr, err)
	}
	if p.Name != name {
		return nil, fmt.Errorf("%s/%s: refused: the pointer is for image %q, not %q (mix-and-match)", s, ptr, p.Name, name)
	}
	return &p, nil
}

// PointedVersion is the version the pointer file ptr of image name names, for a writer
// that reads its own store (pack, gc, the boot menu): false when there is no such file or
// it does not parse as a pointer of that image; an error only when the store fails.
func PointedVersion(ctx context.Context, s store.Store, ptr, name string) (uint64, bool, error) {
	raw, err := s.File(ctx, ptr, index.MaxPointer)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	p, err := parsePointer(s, ptr, name, raw, nil)
	if err != nil {
		return 0, false, nil
	}
	return p.Version, true, nil
}
