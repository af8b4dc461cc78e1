package bootmenu

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// Paths the server answers besides the store's own files.
const (
	ScriptPath = "/boot.ipxe"
	KernelPath = "/boot/vmlinuz"    // the kernel (--kernel FILE, or the store's boot/vmlinuz)
	InitrdPath = "/boot/initrd.img" // the initramfs (--initrd FILE, or the store's boot/initrd.img)
)

// Options configure the menu a server hands out.
type Options struct {
	Kernel, Initrd string // files served at KernelPath and InitrdPath ("": the store's boot/ files)
	URL            string // the store's base URL as machines reach it ("": from each request's Host)
	Default        string // the default image ("": the first in name order)
	Timeout        time.Duration
	Mirrors        []string
	Append         string
}

// Handler serves the boot menu at /boot.ipxe, the kernel and the initramfs at /boot/,
// and everything else from store (the store's own handler). dir is the store directory
// (listed for the menu on every request, so a new image shows up at once).
func Handler(dir string, storeHandler http.Handler, o Options) http.Handler {
	return StoreHandler(func(ctx context.Context) ([]Entry, error) { return List(ctx, dir) }, storeHandler, o)
}

// StoreHandler is Handler for a store anywhere (a directory, a bucket): list returns the
// menu's entries, on every request for the menu.
func StoreHandler(list func(context.Context) ([]Entry, error), storeHandler http.Handler, o Options) http.Handler {
	// Exact paths only, and no ServeMux: it would clean and redirect paths the store's own
	// handler refuses (with "..") or answers itself.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var serve func()
		switch r.URL.Path {
		case ScriptPath:
			serve = func() { serveScript(w, r, list, o) }
		case KernelPath:
			if o.Kernel != "" {
				serve = func() { serveFile(w, r, o.Kernel) }
			}
		case InitrdPath:
			if o.Initrd != "" {
				serve = func() { serveFile(w, r, o.Initrd) }
			}
		}
		if serve == nil {
			storeHandler.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		serve()
	})
}

// Check says what is wrong with o before a server starts: the files must be there, the
// URLs well formed. dir is the store directory.
func Check(dir string, o Options) error {
	return CheckStore(func(name string) error { _, err := os.Stat(dir + "/" + name); return err }, o)
}

// CheckStore is Check for a store anywhere: exists says whether the store has a file
// (nil: it has).
func CheckStore(exists func(name string) error, o Options) error {
	for _, f := range []struct{ flag, path, inStore string }{
		{"--kernel", o.Kernel, "boot/vmlinuz"}, {"--initrd", o.Initrd, "boot/initrd.img"},
	} {
		if f.path != "" {
			st, err := os.Stat(f.path)
			if err != nil {
				return fmt.Errorf("%s: %w", f.flag, err)
			}
			if !st.Mode().IsRegular() {
				return fmt.Errorf("%s %s: not a regular file", f.flag, f.path)
			}
			continue
		}
		if err := exists(f.inStore); err != nil {
			return fmt.Errorf("the boot menu needs a kernel and an initramfs: give %s FILE or put it in the store as %s", f.flag, f.inStore)
		}
	}
	if o.URL != "" {
		if err := checkURL(o.URL); err != nil {
			return fmt.Errorf("--boot-url: %w", err)
		}
	}
	for _, m := range o.Mirrors {
		if err := checkURL(m); err != nil {
			return fmt.Errorf("--boot-mirror: %w", err)
		}
	}
	if err := checkText("--boot-append", o.Append); err != nil {
		return err
	}
	return nil
}

func serveScript(w http.ResponseWriter, r *http.Request, list func(context.Context) ([]Entry, error), o Options) {
	base := strings.TrimSuffix(o.URL, "/")
	if base == "" {
		host, err := requestHost(r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		base = "http://" + host
	}
	entries, err := list(r.Context())
	if err != nil {
		http.Error(w, "boot menu: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// The iPXE menu boots the x86-64 kernel (Debian has no arm64 iPXE): amd64 images only.
	entries = ForArch(entries, "amd64")
	m := Menu{Base: base, Kernel: base + KernelPath, Initrd: base + InitrdPath, Entries: entries,
		Default: o.Default, Timeout: o.Timeout, Mirrors: o.Mirrors, Append: o.Append}
	script, err := Script(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache") // the menu follows the store
	_, _ = w.Write(script)
}

// requestHost returns the Host header if it is a plain host[:port] (a DNS name or an IP
// address), which goes into the script's URLs.
func requestHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("boot menu: the request has no Host header (start the server with --boot-url)")
	}
	host := h
	if hp, port, err := net.SplitHostPort(h); err == nil {
		host = strings.Trim(hp, "[]")
		for _, c := range port {
			if c < '0' || c > '9' {
				return "", fmt.Errorf("boot menu: bad Host header %q", h)
			}
		}
	}
	if net.ParseIP(host) != nil {
		return h, nil
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", fmt.Errorf("boot menu: bad Host header %q", h)
		}
	}
	return h, nil
}

func serveFile(w http.ResponseWriter, r *http.Request, file string) {
	f, err := os.Open(file)
	if err != nil {
		http.Error(w, "404 not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.Error(w, "404 not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// List returns the images of the store directory dir, by name, each with its latest
// version and size (from the latest pointer and the versions file; not verified here:
// the booting machine verifies what it boots).
func List(ctx context.Context, dir string) ([]Entry, error) {
	d, err := store.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := catalog.Names(ctx, d)
	if err != nil {
		return nil, err
	}
	return entries(ctx, d, names), nil
}

// ListStore is List for a store anywhere: its images come from listing it when it can be
// listed, else from its catalogue (a public bucket lets anyone read, not list).
func ListStore(ctx context.Context, s store.Store) ([]Entry, error) {
	if w, ok := s.(store.Writer); ok {
		if names, err := catalog.Names(ctx, w); err == nil {
			return entries(ctx, s, names), nil
		}
	}
	b, err := s.File(ctx, catalog.NamesPath, catalog.MaxNames)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // no image published yet
	}
	if err != nil {
		return nil, err
	}
	names, err := catalog.ParseNames(b)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", s, catalog.NamesPath, err)
	}
	return entries(ctx, s, names), nil
}

// entries describes the images names of store s: for each, the version its latest pointer
// names, and the version each latest.ARCH names when that is another architecture's.
func entries(ctx context.Context, s store.Store, names []string) []Entry {
	var out []Entry
	for _, n := range names {
		var vs *catalog.Versions
		if b, err := s.File(ctx, catalog.VersionsPath(n), catalog.MaxVersions); err == nil {
			text, _ := trust.SplitPointer(b)
			if v, err := catalog.ParseVersions(text); err == nil && v.Name == n {
				vs = v
			}
		}
		describe := func(ptr string) (Entry, bool) {
			e := Entry{Name: n}
			version, ok, err := catalog.PointedVersion(ctx, s, ptr, n)
			if err != nil || !ok {
				return e, false
			}
			e.Version = version
			if vs != nil {
				if v, ok := vs.Find(version); ok {
					e.Size, e.Arch = v.Size, v.Arch
				}
			}
			return e, true
		}
		main, ok := describe(store.LatestPath(n))
		if !ok {
			main = Entry{Name: n} // listed without a version: the machine finds it
		}
		out = append(out, main)
		if vs == nil {
			continue
		}
		arches := map[string]bool{}
		for _, v := range vs.Versions {
			if v.Arch != "" && v.Arch != main.Arch {
				arches[v.Arch] = true
			}
		}
		for _, a := range slices.Sorted(maps.Keys(arches)) {
			if e, ok := describe(store.LatestArchPath(n, a)); ok && e.Arch == a {
				out = append(out, e)
			}
		}
	}
	return out
}

// ForArch picks, of each image in es, the entry a machine of arch boots: its own
// architecture's, else one for any architecture (or of unknown architecture); an image
// with neither is left out, so a menu never offers another architecture's image.
func ForArch(es []Entry, arch string) []Entry {
	var out []Entry
	for i, e := range es {
		if i > 0 && es[i-1].Name == e.Name {
			continue // each name once, from its first entry on
		}
		pick, found := Entry{}, false
		for _, x := range es[i:] {
			if x.Name != e.Name {
				break
			}
			if x.Arch == arch {
				pick, found = x, true
				break
			}
			if x.Arch == "" && !found {
				pick, found = x, true
			}
		}
		if found {
			out = append(out, pick)
		}
	}
	return out
}
