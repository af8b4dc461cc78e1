// Package store reads and writes chunk stores: plain files in the casync/desync layout,
// served by any static web server. Backends (a local directory, HTTP) implement Store;
// policies (retry, mirror sets, on-disk caching) are decorators around any Store.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// ErrNotFound is wrapped by errors for missing chunks and files.
var ErrNotFound = errors.New("not found")

// Store is read access to one chunk store.
type Store interface {
	// Chunk returns the stored (compressed) bytes of a chunk. Implementations refuse
	// responses larger than ref.Stored (when it is known) instead of reading them.
	Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error)
	// File returns a metadata file by its path in the store ("images/NAME/latest"),
	// refusing files larger than max.
	File(ctx context.Context, name string, max int64) ([]byte, error)
	// String names the store for messages (a directory or a URL).
	String() string
}

// Writer is a store that can be written: a local directory (and later object storage).
type Writer interface {
	Store
	// HasChunk reports whether the chunk is stored, and its stored size.
	HasChunk(ctx context.Context, id chunk.ID) (size int64, ok bool, err error)
	// PutChunk stores a chunk file atomically, unless it is already present.
	// It reports whether it wrote anything.
	PutChunk(ctx context.Context, id chunk.ID, data []byte) (bool, error)
	// PutFile writes a metadata file atomically, replacing any previous content.
	PutFile(ctx context.Context, name string, data []byte) error
	// Files lists the metadata files under prefix (e.g. "images/").
	Files(ctx context.Context, prefix string) ([]string, error)
	// Chunks calls fn for every stored chunk file.
	Chunks(ctx context.Context, fn func(id chunk.ID, size int64) error) error
	// RemoveChunk deletes a chunk file.
	RemoveChunk(ctx context.Context, id chunk.ID) error
}

// ChunkPath is where a chunk lives in every store: chunks/<first 4 hex>/<64 hex>.cacnk.
func ChunkPath(id chunk.ID) string {
	s := id.String()
	return "chunks/" + s[:4] + "/" + s + ".cacnk"
}

// IndexPath is where version v of image name is stored.
func IndexPath(name string, v uint64) string {
	return "images/" + name + "/" + strconv.FormatUint(v, 10) + ".index"
}

// ExclusiveWriter is a Writer that can create a metadata file only where none exists
// (fs.ErrExist otherwise): how pack claims a version number that a concurrent pack may
// claim too. Dir implements it (a hard link), S3 too (a conditional PUT) where the
// service honours the condition; where it does not, CreateFile writes nothing and
// returns ErrNoExclusiveCreate, and the caller writes with PutFile instead.
type ExclusiveWriter interface {
	Writer
	CreateFile(ctx context.Context, name string, data []byte) error
}

// ErrNoExclusiveCreate is wrapped by CreateFile's error when the store turned out not to
// be able to create a file exclusively (an S3 service that ignores If-None-Match).
var ErrNoExclusiveCreate = errors.New("this store cannot create files exclusively")

// LatestPath is the pointer to the current version of an image.
func LatestPath(name string) string { return "images/" + name + "/latest" }

// LatestArchPath is the pointer to the current version of an image for machines of arch
// (amd64, arm64): one store can hold an image name for several architectures, each with
// its own latest.ARCH beside the latest pointer of the architecture published first.
func LatestArchPath(name, arch string) string { return LatestPath(name) + "." + arch }

// TooLargeError reports a response or file above its limit (endless-data defence).
type TooLargeError struct {
	What  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: larger than the %d bytes expected", e.What, e.Limit)
}
