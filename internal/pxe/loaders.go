package pxe

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Loader is a boot loader file from a Debian package.
type Loader struct {
	Name    string // served as (TFTP root, HTTP /boot/NAME)
	Path    string // where the package puts it
	Package string // the Debian package to install when it is missing
}

// Debian's loaders.
var (
	Undionly = Loader{UndionlyKPXE, "/usr/lib/ipxe/undionly.kpxe", "ipxe"}
	IPXE     = Loader{IPXEEFI, "/usr/lib/ipxe/ipxe.efi", "ipxe"}
	Shim     = Loader{ShimEFI, "/usr/lib/shim/shimx64.efi.signed", "shim-signed"}
	// Debian's network GRUB, signed by Debian (shim trusts it): its embedded prefix is
	// /grub on the server it was loaded from, and it reads grub/x86_64-efi/grub.cfg,
	// else grub/grub.cfg.
	GrubNet = Loader{GrubEFI, "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed", "grub-efi-amd64-signed"}
)

// GRUB configuration paths grubnetx64 reads from its server (TFTP or HTTP), and the one
// grubnetaa64 reads first.
const (
	GrubCfg      = "grub/grub.cfg"
	GrubArchCfg  = "grub/x86_64-efi/grub.cfg"
	GrubArm64Cfg = "grub/arm64-efi/grub.cfg"
)

// ArmLoaders are Debian's arm64 shim and network GRUB under root: "/" on an arm64
// Debian, or the tree scripts/fetch-kernel.sh arm64 unpacks (.cache/kernel/VERSION/x).
func ArmLoaders(root string) []Loader {
	return []Loader{
		{ShimAA64, filepath.Join(root, "usr/lib/shim/shimaa64.efi.signed"), "shim-signed:arm64 (on another architecture: scripts/fetch-kernel.sh arm64)"},
		{GrubAA64, filepath.Join(root, "usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed"), "grub-efi-arm64-signed:arm64 (on another architecture: scripts/fetch-kernel.sh arm64)"},
	}
}

// Loaders returns the loaders a server needs: iPXE for BIOS and UEFI, plus shim and
// GRUB for Secure Boot.
func Loaders(secureBoot bool) []Loader {
	l := []Loader{Undionly, IPXE}
	if secureBoot {
		l = append(l, Shim, GrubNet)
	}
	return l
}

// CheckLoaders says which loader is missing, naming its package.
func CheckLoaders(ls []Loader) error {
	for _, l := range ls {
		st, err := os.Stat(l.Path)
		if err != nil {
			return fmt.Errorf("--pxe: %s is missing (install the Debian package %s)", l.Path, l.Package)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("--pxe: %s is not a regular file (reinstall the Debian package %s)", l.Path, l.Package)
		}
	}
	return nil
}

// Files is what the TFTP server and the HTTP handler serve: the loaders, by name, and
// generated files (the GRUB menu), made on every request so that they follow the store.
type Files struct {
	Loaders   []Loader
	Generated map[string]func(ctx context.Context) ([]byte, error)
}

// maxFile bounds what is served: the largest loader (GRUB) is 4 MB, the kernel and the
// initramfs GRUB loads under --secure-boot 8 and 10-20 MB. A transfer holds its file in
// memory, and at most maxTransfers run at once.
const maxFile = 64 << 20

// open returns the file called name (exactly: no cleaning, no directories), or false.
func (f *Files) open(ctx context.Context, name string) (*bytes.Reader, time.Time, bool, error) {
	for _, l := range f.Loaders {
		if l.Name == name {
			b, mtime, err := readFile(l.Path)
			return bytes.NewReader(b), mtime, true, err
		}
	}
	if g, ok := f.Generated[name]; ok {
		b, err := g(ctx)
		return bytes.NewReader(b), time.Time{}, true, err
	}
	return nil, time.Time{}, false, nil
}

func readFile(path string) ([]byte, time.Time, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxFile {
		return nil, time.Time{}, fmt.Errorf("%s: not a regular file of at most %d bytes", path, maxFile)
	}
	b := make([]byte, st.Size())
	if _, err := fd.ReadAt(b, 0); err != nil {
		return nil, time.Time{}, err
	}
	return b, st.ModTime(), nil
}

// Handler serves the loaders at /boot/NAME and the GRUB menu at /grub/grub.cfg and
// /grub/x86_64-efi/grub.cfg (GRUB loaded by UEFI HTTP Boot reads its prefix, /grub, over
// HTTP), and passes everything else to next. GET and HEAD only; exact paths only.
func (f *Files) Handler(next http.Handler, logf func(format string, args ...any)) http.Handler {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := "", false
		for _, l := range f.Loaders {
			// shim (15.8) booted from http://S/boot/shimx64.efi asks for the next loader
			// as http://S/boot//grubx64.efi: it appends its "\grubx64.efi" with the
			// backslash turned into a slash.
			if r.URL.Path == HTTPLoaderPrefix+l.Name || r.URL.Path == HTTPLoaderPrefix+"/"+l.Name {
				name, ok = l.Name, true
			}
		}
		for g := range f.Generated {
			if r.URL.Path == "/"+g {
				name, ok = g, true
			}
		}
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		rd, mtime, _, err := f.open(r.Context(), name)
		if err != nil {
			logf("pxe: http %s: %v", r.URL.Path, err)
			http.Error(w, "500 "+name+" is unavailable", http.StatusInternalServerError)
			return
		}
		if filepath.Ext(name) == ".efi" {
			w.Header().Set("Content-Type", "application/efi") // what UEFI HTTP Boot looks for
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", mtime, rd)
	})
}
