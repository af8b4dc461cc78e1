// Package bootmenu makes the diskless boot menu: an iPXE script that lists a store's
// images and boots the chosen one with a kernel and a nowhere initramfs fetched over
// HTTP, the kernel command line naming the image (nowhere.image=) and its mirrors. A
// machine whose firmware (or an iPXE on a USB stick, or a PXE server chain-loading iPXE)
// fetches http://SERVER/boot.ipxe needs no disk and no local files (docs/boot.md).
package bootmenu

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// Entry is one image on the menu.
type Entry struct {
	Name    string
	Version uint64 // the latest version (0: unknown)
	Size    int64  // its size (0: unknown)
	// Arch is the architecture of that version ("": any, or unknown). An image published
	// for several architectures has one entry per architecture; ForArch picks a machine's.
	Arch string
	// URL is the image's own URL, for menus of images anywhere (boot media); "": the
	// image is Menu.Base/images/Name. Only GRUB menus use it.
	URL string
}

// Menu is everything the script says.
type Menu struct {
	Title   string
	Base    string  // the store's base URL as the booting machine reaches it (http://HOST[:PORT][/PATH])
	Kernel  string  // URL of the kernel (a bzImage: iPXE does not load PVH ELF kernels)
	Initrd  string  // URL of the nowhere initramfs
	Entries []Entry // in menu order; the default is listed first
	Default string  // the default entry's image name ("": the first entry)
	Timeout time.Duration
	Mirrors []string // more base URLs of the same store (nowhere.mirror=)
	Append  string   // more kernel command line, on every entry (console=ttyS0, nowhere.key=, ...)
}

// DefaultTimeout is how long the menu waits for a choice before booting the default.
const DefaultTimeout = 5 * time.Second

// Script returns the iPXE script of m. Image names are validated (index.ValidName: only
// letters, digits, '.', '-' and '_', so nothing iPXE would expand or split); labels are
// generated, so no name can collide with the script's own labels. The default entry is
// moved to the front.
func Script(m Menu) ([]byte, error) {
	if len(m.Entries) == 0 {
		return nil, fmt.Errorf("boot menu: the store has no images")
	}
	for _, u := range append([]string{m.Base, m.Kernel, m.Initrd}, m.Mirrors...) {
		if err := checkURL(u); err != nil {
			return nil, fmt.Errorf("boot menu: %w", err)
		}
	}
	if err := checkText("kernel command line", m.Append); err != nil {
		return nil, fmt.Errorf("boot menu: %w", err)
	}
	if err := checkText("title", m.Title); err != nil {
		return nil, fmt.Errorf("boot menu: %w", err)
	}
	entries, err := ordered(m.Entries, m.Default)
	if err != nil {
		return nil, err
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	title := m.Title
	if title == "" {
		title = "nowhere: boot an image from " + m.Base
	}
	base := strings.TrimSuffix(m.Base, "/")
	var b bytes.Buffer
	b.WriteString("#!ipxe\n")
	b.WriteString("# nowhere boot menu: each entry boots the kernel and the nowhere initramfs over HTTP,\n")
	b.WriteString("# then streams the image named on the kernel command line (docs/boot.md).\n")
	fmt.Fprintf(&b, "menu %s\n", title)
	for i, e := range entries {
		fmt.Fprintf(&b, "item %s %s\n", label(i), describe(e))
	}
	fmt.Fprintf(&b, "item --gap\nitem shell iPXE shell\n")
	fmt.Fprintf(&b, "choose --default %s --timeout %d target || goto shell\n", label(0), timeout.Milliseconds())
	b.WriteString("goto ${target}\n")
	for i, e := range entries {
		args := []string{"initrd=initrd.img", "nowhere.image=" + base + "/images/" + e.Name}
		for _, mir := range m.Mirrors {
			args = append(args, "nowhere.mirror="+strings.TrimSuffix(mir, "/"))
		}
		if a := strings.Join(strings.Fields(m.Append), " "); a != "" {
			args = append(args, a)
		}
		fmt.Fprintf(&b, "\n:%s\n", label(i))
		fmt.Fprintf(&b, "echo nowhere: booting image %s from %s\n", e.Name, base)
		fmt.Fprintf(&b, "kernel %s %s || goto failed\n", m.Kernel, strings.Join(args, " "))
		fmt.Fprintf(&b, "initrd --name initrd.img %s || goto failed\n", m.Initrd)
		b.WriteString("boot || goto failed\n")
	}
	b.WriteString("\n:failed\necho nowhere: the boot failed; dropping to the iPXE shell\n")
	b.WriteString(":shell\nshell\n")
	return b.Bytes(), nil
}

// label is the script label of entry i (generated: image names never become labels).
func label(i int) string { return fmt.Sprintf("image%d", i) }

func describe(e Entry) string {
	s := e.Name
	switch {
	case e.Version > 0 && e.Size > 0:
		s += fmt.Sprintf(" (version %d, %s)", e.Version, units.Bytes(e.Size))
	case e.Version > 0:
		s += fmt.Sprintf(" (version %d)", e.Version)
	}
	return s
}

// ordered validates the entries and puts the default first.
func ordered(in []Entry, def string) ([]Entry, error) {
	seen := map[string]bool{}
	var out []Entry
	found := def == ""
	for _, e := range in {
		if err := index.ValidName(e.Name); err != nil {
			return nil, fmt.Errorf("boot menu: %w", err)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("boot menu: image %q listed twice", e.Name)
		}
		seen[e.Name] = true
		if e.Name == def {
			found = true
			out = append([]Entry{e}, out...)
			continue
		}
		out = append(out, e)
	}
	if !found {
		return nil, fmt.Errorf("boot menu: the default image %q is not in the store", def)
	}
	return out, nil
}

// checkURL accepts absolute http(s) URLs without characters iPXE would expand, quote or
// split on ('$', whitespace, quotes, backslash).
func checkURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", u)
	}
	if strings.ContainsAny(u, "${}\"'\\ \t\r\n") {
		return fmt.Errorf("%q: characters iPXE would expand or split on ($ { } quotes backslash whitespace)", u)
	}
	return nil
}

// checkText refuses what would change the script's meaning on one line.
func checkText(what, s string) error {
	if strings.ContainsAny(s, "${}\"'\\\r\n") {
		return fmt.Errorf("%s %q: characters iPXE would expand or quote ($ { } quotes backslash newline)", what, s)
	}
	return nil
}
