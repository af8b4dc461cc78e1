package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/store"
)

// S3Files serves the files of a store in a bucket (serve-through): every request is a
// HEAD and, for the bytes, a GET (ranged when the client asked for a range) to the
// object storage, with the credentials of the server. Keys are the store's prefix plus a
// clean name, so nothing outside the prefix can be asked for. Failures of the object
// storage (a 502 for the client, which learns no more) go to logf.
func S3Files(s *store.S3, logf func(format string, args ...any)) Files { return s3Files{s, logf} }

type s3Files struct {
	s    *store.S3
	logf func(format string, args ...any)
}

func (f s3Files) Open(ctx context.Context, name string) (File, error) {
	if name == "." || strings.HasSuffix(name, "/") {
		return File{}, fs.ErrNotExist // the prefix itself, a "directory": no listings
	}
	o, err := f.s.Open(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return File{}, fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	if err != nil {
		if !errors.Is(err, fs.ErrPermission) {
			f.logf("%v", err)
		}
		return File{}, err
	}
	etag := ""
	if t := strings.Trim(o.Info.ETag, `"`); t != "" {
		etag = `"` + t + `"`
	}
	return File{
		Content: o.Object, Size: o.Info.Size, ModTime: o.Info.LastModified, ETag: etag,
		// Some servers answer for a directory of their disk as if it were an object.
		Regular: !strings.HasSuffix(o.Info.Key, "/") && o.Info.ContentType != "application/x-directory",
	}, nil
}
