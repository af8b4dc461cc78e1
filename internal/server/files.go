package server

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Files is where a Handler finds the store's files: a directory (DirFiles) or a bucket
// (S3Files). Open gets a clean name inside the store ("images/a/latest", never with "..").
// Its errors say what the client gets: fs.ErrNotExist a 404, fs.ErrPermission a 403,
// anything else a 502 (the store behind the server failed).
type Files interface {
	Open(ctx context.Context, name string) (File, error)
}

// File is an opened store file, ready for http.ServeContent.
type File struct {
	// Content is handed to http.ServeContent as it is: an *os.File stays one, so the
	// kernel's sendfile still carries the bytes of a directory store.
	Content io.ReadSeekCloser
	Size    int64
	ModTime time.Time
	// ETag is the store's own strong validator for the file, quoted ("": the handler
	// makes one from size and modification time).
	ETag string
	// Regular is false for directories, FIFOs and devices, which are never served.
	Regular bool
}

// DirFiles serves the files of a directory opened as an os.Root: no way out of it, not
// even through symlinks.
func DirFiles(root *os.Root) Files { return dirFiles{root} }

type dirFiles struct{ root *os.Root }

func (d dirFiles) Open(_ context.Context, name string) (File, error) {
	// O_NONBLOCK: a FIFO in the store would otherwise block this request forever; it does
	// not change reads of regular files, and anything else is refused by the handler.
	f, err := d.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return File{}, dirError(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return File{}, dirError(err)
	}
	return File{Content: f, Size: st.Size(), ModTime: st.ModTime(), Regular: st.Mode().IsRegular()}, nil
}

// dirError keeps permission errors and turns every other failure to open a file into
// "not there": symlinks escaping the root and other refusals from os.Root land here.
func dirError(err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return fs.ErrNotExist
}
