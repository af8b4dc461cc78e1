package bootdisk

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
	"github.com/nowhere-boot/nowhere/internal/bootmenu"
	"github.com/nowhere-boot/nowhere/internal/image"
)

// The paths of the kernel and the initramfs on the media, as the boot loaders name them.
const (
	KernelPath = "/vmlinuz"
	InitrdPath = "/initrd.img"
)

// DefaultTimeout is how long the menus wait before booting the default entry.
const DefaultTimeout = 5 * time.Second

// DefaultAppend is the kernel command line every entry gets after the nowhere.*
// parameters when none is given: the console on the screen and on the first serial port.
const DefaultAppend = "console=tty0 console=ttyS0,115200"

// ArmAppend is DefaultAppend for arm64 machines, whose first serial port is a PL011
// (ttyAMA0) on qemu's virt machine and many servers.
const ArmAppend = "console=tty0 console=ttyAMA0,115200"

// Entry is one image on the menu.
type Entry struct {
	URL     string // the image, http(s)://HOST/PATH/images/NAME[/VERSION] (nowhere.image=)
	Name    string // its name, from the URL (set by Menu.Check)
	Version uint64 // its version, from the URL (0: the latest; set by Menu.Check)
}

// describe is the entry's menu label.
func (e Entry) describe() string {
	if e.Version > 0 {
		return fmt.Sprintf("%s (version %d)", e.Name, e.Version)
	}
	return e.Name
}

// Menu is what the boot loaders' menus offer: one entry per image, the first the default.
type Menu struct {
	Title   string // "" = "nowhere boot disk"
	Entries []Entry
	Mirrors []string      // base URLs of the same store (nowhere.mirror=), on every entry
	Append  string        // the rest of the kernel command line, on every entry
	Timeout time.Duration // at least 1 s (Check raises a shorter one)
}

// Check validates the menu and fills in the entries' names. Every text that ends up on
// a GRUB or SYSLINUX line is refused if it holds a character either would treat
// specially (quotes, '$', ';', braces, backslash, '#', '|', '&', '<', '>', '`', control
// characters and, outside the command line's separators, whitespace), so no URL or
// argument can end a line, start a command or expand a variable; the image URLs and
// mirrors are also checked by the parser the boot itself uses.
func (m *Menu) Check() error {
	if len(m.Entries) == 0 {
		return fmt.Errorf("no image: give at least one --image URL")
	}
	if m.Timeout < 0 {
		return fmt.Errorf("timeout %s: must not be negative", m.Timeout)
	}
	if m.Timeout < time.Second {
		m.Timeout = time.Second // GRUB's shortest wait here; a menu nobody can see is no menu
	}
	if m.Timeout > time.Hour {
		return fmt.Errorf("timeout %s: at most 1h", m.Timeout)
	}
	if err := checkText("title", m.Title, true); err != nil {
		return err
	}
	seen, names := map[string]bool{}, map[string]string{}
	for i := range m.Entries {
		e := &m.Entries[i]
		if err := checkText("image URL", e.URL, false); err != nil {
			return err
		}
		loc, err := image.ParseLocation(e.URL)
		if err != nil {
			return fmt.Errorf("image URL %q: %v", e.URL, err)
		}
		if seen[e.URL] {
			return fmt.Errorf("image URL %q given twice", e.URL)
		}
		seen[e.URL] = true
		if u, ok := names[loc.Name]; ok {
			return fmt.Errorf("image URLs %q and %q: both are images named %q; the menu needs one image per name", u, e.URL, loc.Name)
		}
		names[loc.Name] = e.URL
		e.Name, e.Version = loc.Name, loc.Version
	}
	for _, u := range m.Mirrors {
		if err := checkText("mirror URL", u, false); err != nil {
			return err
		}
	}
	for _, a := range strings.Fields(m.Append) {
		if err := checkText("kernel command line argument", a, false); err != nil {
			return err
		}
	}
	// The same parser as the boot's: a bad URL fails here, not on a machine at boot.
	for _, e := range m.Entries {
		if _, err := cmdline.Parse(cmdline.Layer{Name: "the boot menu", Text: strings.Join(m.nowhereArgs(e), " ")}); err != nil {
			return err
		}
	}
	return nil
}

// bad is what no line of a boot loader configuration may hold.
const bad = "\"'`$;{}\\#|&<>"

func checkText(what, s string, spaces bool) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (!spaces && (r == ' ' || r == '\t')) {
			return fmt.Errorf("%s %q: control characters or spaces are not allowed", what, s)
		}
		if strings.ContainsRune(bad, r) {
			return fmt.Errorf("%s %q: the character %q is not allowed (none of %s: boot loaders treat them specially)", what, s, r, bad)
		}
	}
	return nil
}

func (m *Menu) nowhereArgs(e Entry) []string {
	a := []string{"nowhere.image=" + e.URL}
	for _, mir := range m.Mirrors {
		a = append(a, "nowhere.mirror="+mir)
	}
	return a
}

// Cmdline is the kernel command line of entry i.
func (m *Menu) Cmdline(i int) string {
	a := m.nowhereArgs(m.Entries[i])
	a = append(a, strings.Fields(m.Append)...)
	return strings.Join(a, " ")
}

func (m *Menu) title() string {
	if m.Title == "" {
		return "nowhere boot disk"
	}
	return m.Title
}

// GRUB returns grub.cfg, made by bootmenu.GRUB: the menu on the screen and on the first
// serial port at 115200 baud (when there is one), the first entry the default, booted
// after the timeout (whole seconds, rounded up). 'e' on an entry shows and edits its
// command line. Each entry echoes which image it boots before loading the kernel.
func GRUB(m Menu) ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	bm := bootmenu.Menu{Title: m.title(), Kernel: KernelPath, Initrd: InitrdPath, Mirrors: m.Mirrors,
		Append: m.Append, Timeout: m.Timeout}
	for _, e := range m.Entries {
		bm.Entries = append(bm.Entries, bootmenu.Entry{Name: e.Name, Version: e.Version, URL: e.URL})
	}
	return bootmenu.GRUB(bm)
}

// SYSLINUX returns syslinux.cfg (also isolinux.cfg): menu.c32 on the screen and on the
// first serial port, the first entry the default, booted after the timeout (tenths of a
// second). Tab on an entry edits its command line.
func SYSLINUX(m Menu) ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("SERIAL 0 115200\n") // must be the first directive
	b.WriteString("# nowhere boot disk (nowhere bootdisk): each entry boots the kernel and the nowhere\n")
	b.WriteString("# initramfs on this disk, which streams the image named by nowhere.image= over HTTP.\n")
	b.WriteString("UI menu.c32\n")
	b.WriteString("PROMPT 0\n")
	tenths := (m.Timeout + 100*time.Millisecond - 1) / (100 * time.Millisecond)
	fmt.Fprintf(&b, "TIMEOUT %d\n", tenths)
	fmt.Fprintf(&b, "MENU TITLE %s\n", m.title())
	b.WriteString("DEFAULT image0\n")
	for i, e := range m.Entries {
		fmt.Fprintf(&b, "\nLABEL image%d\n", i)
		fmt.Fprintf(&b, "  MENU LABEL %s\n", e.describe())
		fmt.Fprintf(&b, "  LINUX %s\n", KernelPath)
		fmt.Fprintf(&b, "  INITRD %s\n", InitrdPath)
		fmt.Fprintf(&b, "  APPEND %s\n", m.Cmdline(i))
	}
	return b.Bytes(), nil
}
