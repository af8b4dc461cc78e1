// Package server serves a store over plain HTTP. A store is just files, so this is a
// careful static file server: GET and HEAD only, Range, ETag, the caching headers that let
// proxies and CDNs carry the load, and no way out of the store (a directory or a bucket).
package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

// Handler returns the composed handler for a store directory: method filter, then caching
// headers, then the files; wrap it with AccessLog for logging.
func Handler(root *os.Root) http.Handler { return FilesHandler(DirFiles(root)) }

// FilesHandler is Handler for a store's files wherever they are (a directory, a bucket).
func FilesHandler(f Files) http.Handler {
	return methods(cacheHeaders(files{f}))
}

// methods allows only GET and HEAD: a store is read-only over HTTP.
func methods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only store: only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// CacheControl returns the Cache-Control value for a store path. Chunks and versioned
// indexes never change (a chunk's name is its hash; a version is written once), so any
// cache may keep them for a year; the latest pointers and the mirror list move. The
// pointers (latest, latest.ARCH) and their detached signatures share one short age, so a
// cache never pairs a pointer with a signature a minute older.
func CacheControl(p string) string {
	base := path.Base(p)
	switch {
	case strings.HasPrefix(p, "chunks/") && strings.HasSuffix(p, ".cacnk"),
		strings.HasPrefix(p, "images/") && strings.HasSuffix(p, ".index"):
		return "public, max-age=31536000, immutable"
	case strings.HasPrefix(p, "images/") && (base == "latest" || strings.HasPrefix(base, "latest.")):
		return "public, max-age=10"
	}
	return "public, max-age=60"
}

func cacheHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", CacheControl(strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")))
		next.ServeHTTP(w, r)
	})
}

// files serves the store's files from fs.
type files struct{ fs Files }

func (f files) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := cleanPath(r.URL.Path)
	if !ok {
		fail(w, "bad path", http.StatusBadRequest)
		return
	}
	if strings.HasPrefix(path.Base(name), ".tmp-") || !InLayout(name) {
		// A file being written does not exist yet, as far as clients are concerned; and
		// nothing outside the store's layout is served (a key or a note left in DIR).
		fail(w, "404 not found", http.StatusNotFound)
		return
	}
	file, err := f.fs.Open(r.Context(), name)
	if err != nil {
		openFailed(w, err)
		return
	}
	defer file.Content.Close()
	if !file.Regular {
		// No directory listings: clients know every name they need from indexes.
		fail(w, "404 not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	switch {
	case strings.HasSuffix(name, ".cacnk"):
		h.Set("Content-Type", "application/octet-stream")
		// The name is the hash of the content: a perfect strong validator.
		h.Set("ETag", `"`+strings.TrimSuffix(path.Base(name), ".cacnk")+`"`)
	default:
		if strings.HasSuffix(name, ".index") {
			h.Set("Content-Type", "application/octet-stream")
		} else {
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
		etag := file.ETag
		if etag == "" {
			etag = fmt.Sprintf(`"%x-%x"`, file.Size, file.ModTime.UnixNano())
		}
		h.Set("ETag", etag)
	}
	http.ServeContent(w, r, "", file.ModTime, file.Content)
}

// InLayout reports whether name (cleaned, inside the store) is part of a store's layout:
// the chunks/, images/ and boot/ trees and the mirrors list, of the store at DIR or of one
// below it (DIR/m1/chunks/..., a second store served from the same tree, as a mirror at
// a path). Hidden names (a lock, a file being written) and secret keys (*.key) are not,
// wherever they are.
func InLayout(name string) bool {
	segs := strings.Split(name, "/")
	for _, seg := range segs {
		if strings.HasPrefix(seg, ".") {
			return false
		}
	}
	if strings.HasSuffix(name, ".key") {
		return false
	}
	if segs[len(segs)-1] == "mirrors" {
		return true
	}
	for _, seg := range segs[:len(segs)-1] {
		if seg == "chunks" || seg == "images" || seg == "boot" {
			return true
		}
	}
	return false
}

// cleanPath turns a URL path into a name inside the store, refusing anything that tries
// to leave it. os.Root refuses symlinks out of the store.
func cleanPath(p string) (string, bool) {
	if strings.ContainsRune(p, 0) || strings.Contains(p, "\\") {
		return "", false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", false
		}
	}
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	if name == "" {
		name = "."
	}
	return name, true
}

// openFailed answers a failed Open: see Files for what each error means.
func openFailed(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fail(w, "404 not found", http.StatusNotFound)
	case errors.Is(err, fs.ErrPermission):
		fail(w, "403 forbidden", http.StatusForbidden)
	default:
		// The reason (an address, a service's message) is for the server's log, not for
		// whoever asked.
		fail(w, "502 bad gateway: the store did not answer", http.StatusBadGateway)
	}
}

// fail answers with an error that caches must not keep as if it were the file: the
// Cache-Control set for the path (a year, for chunks) describes the file, and a chunk
// missing now (a mirror still syncing) must be fetchable once it arrives.
func fail(w http.ResponseWriter, msg string, code int) {
	w.Header().Del("Cache-Control")
	http.Error(w, msg, code)
}

// AccessLog logs one line per request: client, method, path, status, bytes, range, time.
func AccessLog(next http.Handler, logf func(format string, args ...any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		rng := r.Header.Get("Range")
		if rng == "" {
			rng = "-"
		}
		logf("%s %s %s %d %d %s %s", r.RemoteAddr, r.Method, r.URL.Path, rec.status, rec.bytes, rng,
			time.Since(start).Round(time.Microsecond))
	})
}

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }
func (r *recorder) Write(p []byte) (int, error) {
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}
