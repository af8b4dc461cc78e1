package store

import (
	"context"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// Fetched is a verified chunk: its stored bytes (for caches and copies) and its content.
type Fetched struct {
	Raw   []byte
	Plain []byte
}

// Fetcher returns verified chunks. Everything above it (the image reader) can trust every
// byte it gets; everything below it (stores, mirrors, caches) is untrusted.
type Fetcher interface {
	Fetch(ctx context.Context, ref chunk.Ref) (Fetched, error)
}

// Verify turns a Store into a Fetcher by decoding and checking every chunk it returns.
func Verify(s Store) Fetcher { return verifier{s} }

type verifier struct{ s Store }

func (v verifier) Fetch(ctx context.Context, ref chunk.Ref) (Fetched, error) {
	raw, err := v.s.Chunk(ctx, ref)
	if err != nil {
		return Fetched{}, err
	}
	plain, err := chunk.Decode(nil, ref.ID, int(ref.Len), raw)
	if err != nil {
		return Fetched{}, err
	}
	return Fetched{Raw: raw, Plain: plain}, nil
}
