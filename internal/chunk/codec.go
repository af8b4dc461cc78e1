package chunk

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MaxSize is the largest chunk any chunker may produce and any reader will accept.
// It bounds the memory one hostile chunk can make a client allocate.
const MaxSize = 16 << 20

// MaxStored bounds the stored (compressed) size of a chunk of n plain bytes: zstd's
// worst case (ZSTD_COMPRESSBOUND: n + n/256, plus up to 64 bytes below 128 KiB), with room
// to spare for frame headers and other encoders. An index may not declare more: a stored
// size is what a client allocates and reads before it can check anything.
func MaxStored(n int) int {
	b := n + n>>7 + 1024
	if n < 128<<10 {
		b += (128<<10 - n) >> 11
	}
	return b
}

// ErrCorrupt is returned (wrapped) when stored bytes do not decode to the chunk their ID names.
var ErrCorrupt = errors.New("corrupt chunk")

var (
	encoderOnce sync.Once
	encoder     *zstd.Encoder
	decoderOnce sync.Once
	decoder     *zstd.Decoder
	// capDecoder stops at cap(dst): Decode knows the plain size, so a frame that decodes
	// past it (a zstd bomb) fails after one block instead of after MaxSize.
	capDecoder *zstd.Decoder
)

// zstd encoders and decoders are expensive to create and safe for concurrent EncodeAll and
// DecodeAll calls, so the process shares one of each.
func sharedEncoder() *zstd.Encoder {
	encoderOnce.Do(func() {
		var err error
		encoder, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			panic(err) // only fails on invalid options, which are constants here
		}
	})
	return encoder
}

func sharedDecoder() *zstd.Decoder {
	decoderOnce.Do(func() {
		var err error
		decoder, err = zstd.NewReader(nil,
			zstd.WithDecoderMaxMemory(MaxSize),
			zstd.WithDecoderConcurrency(0),
			// Every decoded chunk is checked against its SHA-256 name, which is what we
			// trust; the frame's xxhash64 adds nothing but a pass over the output.
			zstd.IgnoreChecksum(true))
		if err != nil {
			panic(err)
		}
		capDecoder, err = zstd.NewReader(nil,
			zstd.WithDecoderMaxMemory(MaxSize+decodeSlack), // the cap is the real bound
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecodeAllCapLimit(true),
			zstd.IgnoreChecksum(true))
		if err != nil {
			panic(err)
		}
	})
	return decoder
}

// Encode compresses plain chunk bytes into one zstd frame, appended to dst.
func Encode(dst, plain []byte) []byte {
	return sharedEncoder().EncodeAll(plain, dst)
}

// decodeSlack is spare capacity past a chunk's end in the buffer it is decoded into: with
// it the zstd decoder may use its fast copies, which overrun the end of a literal run or
// a match by up to 32 bytes; without it, it uses slower bounds-exact copies. A frame that
// decodes to more than the declared size still stops within size+decodeSlack bytes.
const decodeSlack = 64

// Decode decompresses stored bytes, appending to dst, and checks that the result is exactly
// size bytes long and hashes to id. It never returns unverified bytes: on any mismatch the
// error wraps ErrCorrupt and the returned slice is nil.
func Decode(dst []byte, id ID, size int, stored []byte) ([]byte, error) {
	if size <= 0 || size > MaxSize {
		return nil, fmt.Errorf("chunk %s: %w: declared size %d out of range", id, ErrCorrupt, size)
	}
	if cap(dst)-len(dst) < size+decodeSlack {
		nd := make([]byte, len(dst), len(dst)+size+decodeSlack)
		copy(nd, dst)
		dst = nd
	}
	start := len(dst)
	sharedDecoder()
	out, err := capDecoder.DecodeAll(stored, dst[:start:start+size+decodeSlack])
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w: %v", id, ErrCorrupt, err)
	}
	plain := out[start:]
	if len(plain) != size {
		return nil, fmt.Errorf("chunk %s: %w: decodes to %d bytes, index says %d", id, ErrCorrupt, len(plain), size)
	}
	if Sum(plain) != id {
		return nil, fmt.Errorf("chunk %s: %w: content does not match its name", id, ErrCorrupt)
	}
	return out, nil
}

// DecodeUnknown decodes a chunk file whose plain size is not known (checking a store
// without its indexes) and verifies it against id.
func DecodeUnknown(id ID, stored []byte) ([]byte, error) {
	out, err := sharedDecoder().DecodeAll(stored, nil)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w: %v", id, ErrCorrupt, err)
	}
	if len(out) == 0 || len(out) > MaxSize {
		return nil, fmt.Errorf("chunk %s: %w: decodes to %d bytes", id, ErrCorrupt, len(out))
	}
	if Sum(out) != id {
		return nil, fmt.Errorf("chunk %s: %w: content does not match its name", id, ErrCorrupt)
	}
	return out, nil
}
