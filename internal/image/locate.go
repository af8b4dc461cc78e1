package image

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Location is where an image is: a store (URL or directory), the image's name, and a
// version (0 = follow the latest pointer).
type Location struct {
	Store   string
	Name    string
	Version uint64
	// Arch, when set (GOARCH spelling), is the machine the image is loaded for: without a
	// Version, its own pointer latest.ARCH is followed when the store has one, else latest;
	// an index reached through latest.ARCH must record that architecture. Not part of
	// the URL.
	Arch string
}

func (l Location) String() string {
	s := strings.TrimSuffix(l.Store, "/") + "/images/" + l.Name
	if l.Version != 0 {
		s += "/" + strconv.FormatUint(l.Version, 10)
	}
	return s
}

// ParseLocation understands STORE/images/NAME, STORE/images/NAME/VERSION,
// STORE/images/NAME/latest and STORE/images/NAME/VERSION.index, where STORE is an http(s)
// URL or a directory.
func ParseLocation(src string) (Location, error) {
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("image %q: %s (want STORE/images/NAME[/VERSION], STORE being a URL or a directory)", src, why)
	}
	s := strings.TrimSuffix(src, "/")
	i := strings.LastIndex(s, "/images/")
	if i < 0 {
		if strings.HasPrefix(s, "images/") {
			i = -1
		} else {
			return bad("no /images/ in it")
		}
	}
	storePart := "."
	if i >= 0 {
		storePart = s[:i]
		if storePart == "" {
			storePart = "/"
		}
	}
	rest := strings.Split(s[i+len("/images/"):], "/")
	var loc Location
	loc.Store = storePart
	switch len(rest) {
	case 1:
	case 2:
		v := strings.TrimSuffix(rest[1], ".index")
		if v != "latest" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 {
				return bad(fmt.Sprintf("version %q is not a positive number", rest[1]))
			}
			loc.Version = n
		}
	default:
		return bad("too many parts after /images/")
	}
	loc.Name = rest[0]
	if err := index.ValidName(loc.Name); err != nil {
		return bad(err.Error())
	}
	return loc, nil
}

// OpenStore opens a store location: an http(s) URL or an existing directory.
func OpenStore(loc string) (store.Store, error) {
	return OpenStoreWith(loc, store.OpenOptions{})
}

// OpenStoreWith is OpenStore with options for http(s) stores (custom CA, deadlines)
// and, when opt.S3 is set, s3:// stores; the scheme is store.Open's to dispatch. A
// directory must already be a nowhere store (hold images/), so a typo fails here, in one
// line, and not as a missing index later.
func OpenStoreWith(loc string, opt store.OpenOptions) (store.Store, error) {
	if store.IsRemote(loc) {
		return store.Open(context.Background(), loc, opt)
	}
	abs, err := filepath.Abs(loc)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, "images")); err != nil {
		if _, err2 := os.Stat(abs); err2 != nil {
			return nil, fmt.Errorf("store %s: %w", abs, errors.Unwrap(err2))
		}
		return nil, fmt.Errorf("store %s: no images/ directory: not a nowhere store", abs)
	}
	return store.Open(context.Background(), abs, opt)
}

// MaxIndexFile bounds an index file fetched from a store.
const MaxIndexFile = index.MaxFile

// Verifier decides whether to believe what a store serves (internal/trust implements it
// with signatures and a rollback memory). Load calls it on every file it fetches before
// using what the file says.
type Verifier interface {
	// Pointer checks the latest pointer of image name as fetched, and returns the text to
	// parse (without its signature).
	Pointer(name string, raw []byte) ([]byte, error)
	// Index checks an index file fetched for image name (version 0: the version the latest
	// pointer named) and returns it decoded.
	Index(name string, version uint64, file []byte) (*index.Index, error)
}

// Load fetches and decodes the index loc names, following the latest pointer when no
// version is given. It returns the index and the raw file. It checks no signature: clients
// use LoadVerified; Load is for tools that inspect a store they own.
func Load(ctx context.Context, s store.Store, loc Location, p store.Policy) (*index.Index, []byte, error) {
	return LoadVerified(ctx, s, loc, p, nil)
}

// LoadVerified is Load with every fetched file checked by v (nil: no checks) before it is
// believed: the pointer before it is followed, the index before it is decoded.
//
// From a mirror set, the pointer and its index come from one mirror, and when what it
// served fails (verification, the pointer's pin, decoding, or the index is missing
// there), the load starts again from the next mirror in rank order, until one gives an
// answer that holds: one lying or broken mirror cannot stop a mount or a boot. A mirror
// whose answer failed verification is demoted as hard as one that serves a corrupt chunk.
// When every mirror fails, the error's first line says so and each further line names a
// mirror and why.
func LoadVerified(ctx context.Context, s store.Store, loc Location, p store.Policy, v Verifier) (*index.Index, []byte, error) {
	var excluded, why []string
	for {
		pick := &store.MetadataPick{Exclude: excluded}
		ix, file, err := loadOnce(store.WithMetadataPick(ctx, pick), s, servedBy(pick, s), loc, p, v)
		if err == nil {
			return ix, file, nil
		}
		m := pick.Mirror()
		stalled := false
		if m == "" && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// The first mirror asked held the load past its deadline: another may answer.
			m, stalled = pick.Stalled(), true
		}
		if m == "" || ctx.Err() != nil || pick.Mirrors() < 2 {
			// No mirror set answered (a single store, or every mirror failed to fetch:
			// the error says so), or there is no other mirror to ask.
			if len(why) == 0 {
				if stalled && m != "" {
					return nil, nil, fmt.Errorf("%s/%w", m, err) // name the mirror that held it: URL/FILE: ...
				}
				return nil, nil, err
			}
			why = append(why, oneLine(err))
			break
		}
		var fe *fetchError
		switch {
		case stalled:
			pick.Demote(err)
		case !errors.As(err, &fe):
			pick.Distrust(err)
		}
		why = append(why, m+": "+oneLine(err))
		excluded = append(excluded, m)
		if len(excluded) >= pick.Mirrors() {
			break
		}
	}
	return nil, nil, fmt.Errorf("image %s: no mirror served a latest pointer and index that hold (%d tried):\n  %s",
		loc.Name, len(why), strings.Join(why, "\n  "))
}

// fetchError marks a failure to fetch a file (the mirror set already demoted the mirror
// as it deserved), as opposed to a file that was fetched and then did not hold.
type fetchError struct{ err error }

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// oneLine keeps an error on one line of the summary.
func oneLine(err error) string { return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ") }

// servedBy names, for the messages of a load, where its files came from: the mirror that
// served them when a mirror set did (the set's own name is its first mirror's, with
// "(+N mirrors)", whichever served), else s.
func servedBy(pick *store.MetadataPick, s store.Store) fmt.Stringer {
	return stringer(func() string {
		if m := pick.Mirror(); m != "" {
			return m
		}
		return fmt.Sprint(s)
	})
}

type stringer func() string

func (f stringer) String() string { return f() }

// loadOnce is one load of LoadVerified, from whatever s serves; from names the files'
// source in its refusals.
func loadOnce(ctx context.Context, s store.Store, from fmt.Stringer, loc Location, p store.Policy, v Verifier) (*index.Index, []byte, error) {
	get := func(name string, max int64) ([]byte, error) {
		var b []byte
		err := p.Do(ctx, "fetch "+name, func(ctx context.Context) error {
			var err error
			b, err = s.File(ctx, name, max)
			var tl *store.TooLargeError
			var cert *tls.CertificateVerificationError // another try meets the same certificate
			if errors.Is(err, store.ErrNotFound) || errors.As(err, &tl) || errors.As(err, &cert) {
				return store.Permanent(err)
			}
			return err
		})
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// The load's deadline ended a request that was still running: say which file
			// and what happened, not just "context deadline exceeded" (LoadVerified puts
			// the mirror's URL in front).
			within := ""
			if p.Timeout > 0 {
				within = " within " + p.Timeout.String()
			}
			err = fmt.Errorf("%s: no complete response%s: %w", name, within, err)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			err = &fetchError{err}
		}
		return b, err
	}
	version := loc.Version
	var ptr *index.Pointer
	latest := store.LatestPath(loc.Name)
	archPointer := false
	if version == 0 {
		var b []byte
		var err error
		if loc.Arch != "" {
			// A store without per-architecture pointers answers 404 here (one request
			// more). Any other failure falls back to latest too: offline, a cache holds
			// the files an earlier load used, and a latest.ARCH never found is not one.
			b, err = get(store.LatestArchPath(loc.Name, loc.Arch), index.MaxPointer)
			if err == nil {
				latest, archPointer = store.LatestArchPath(loc.Name, loc.Arch), true
			}
		}
		if !archPointer {
			b, err = get(latest, index.MaxPointer)
		}
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, fmt.Errorf("image %q not found in %s (no %s)", loc.Name, s, latest)
			}
			return nil, nil, err
		}
		if v != nil {
			if b, err = v.Pointer(loc.Name, b); err != nil {
				return nil, nil, fmt.Errorf("%s/%s: %w", from, latest, err)
			}
		}
		pt, err := index.ParsePointer(b)
		if err != nil {
			return nil, nil, fmt.Errorf("%s/%s: %w", from, latest, err)
		}
		if pt.Name != loc.Name {
			return nil, nil, fmt.Errorf("%s/%s: refused: the pointer is for image %q, not %q (mix-and-match)", from, latest, pt.Name, loc.Name)
		}
		ptr, version = &pt, pt.Version
	}
	name := store.IndexPath(loc.Name, version)
	file, err := get(name, MaxIndexFile)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, fmt.Errorf("image %s version %d not found in %s (no %s)", loc.Name, version, s, name)
		}
		return nil, nil, err
	}
	if ptr != nil && !ptr.Matches(file) {
		return nil, nil, fmt.Errorf("%s/%s: refused: does not match the sha256 that %s pins (altered or swapped)", from, name, latest)
	}
	var ix *index.Index
	if v != nil {
		ix, err = v.Index(loc.Name, loc.Version, file)
	} else {
		ix, err = index.Decode(file)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s/%s: %w", from, name, err)
	}
	if ix.Name != loc.Name || ix.Version != version {
		return nil, nil, fmt.Errorf("%s/%s: refused: holds image %s version %d, not %s version %d (mix-and-match)", from, name, ix.Name, ix.Version, loc.Name, version)
	}
	if archPointer && ix.Arch != loc.Arch {
		return nil, nil, fmt.Errorf("%s/%s: refused: %s names version %d, an image for %s, not %s (mix-and-match)", from, name, latest, version, ix.ArchOrAny(), loc.Arch)
	}
	return ix, file, nil
}
