package pack

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

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

// Publish makes an encoded index visible: chunks are flushed first, then the versioned
// index is written, then the latest pointer moves to it. Each write is atomic.
func Publish(ctx context.Context, w store.Writer, ix *index.Index, file []byte) error {
	if s, ok := w.(syncer); ok {
		if err := s.Sync(); err != nil {
			return err
		}
	}
	if err := w.PutFile(ctx, store.IndexPath(ix.Name, ix.Version), file); err != nil {
		return err
	}
	ptr := index.NewPointer(ix, file)
	return w.PutFile(ctx, store.LatestPath(ix.Name), ptr.Encode())
}
