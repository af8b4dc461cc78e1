package bootdisk

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
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

// Entry is one image on the menu.
type Entry struct {
	URL  string // the image, http(s)://HOST/PATH/images/NAME[/VERSION] (nowhere.image=)
	Name string // its name, from the URL (set by Menu.Check)
}

// Menu is what the boot loaders' menus offer: one entry per image, the first the default.
type Menu struct {
	Title   string // "" = "nowhere boot disk"
	Entries []Entry
	Mirrors []string // base URLs of the same store (nowhere.mirror=), on every entry
	Append  string   // the rest of the kernel command line, on every entry
	Timeout time.Duration
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
	if m.Timeout > time.Hour {
		return fmt.Errorf("timeout %s: at most 1h", m.Timeout)
	}
	if err := checkText("title", m.Title, true); err != nil {
		return err
	}
	seen := map[string]bool{}
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
		e.Name = loc.Name
		if loc.Version > 0 {
			e.Name = fmt.Sprintf("%s version %d", loc.Name, loc.Version)
		}
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

// GRUB returns grub.cfg: the menu on the screen and on the first serial port at 115200
// baud, the first entry the default, booted after the timeout (whole seconds, rounded
// up; 0 boots at once). 'e' on an entry edits its command line, as GRUB always allows.
// Each entry echoes which image it boots before loading the kernel.
func GRUB(m Menu) ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# nowhere boot disk (nowhere bootdisk): each entry boots the kernel and the nowhere\n")
	b.WriteString("# initramfs on this disk, which streams the image named by nowhere.image= over HTTP.\n")
	b.WriteString("serial --unit=0 --speed=115200\n")
	b.WriteString("terminal_input console serial\n")
	b.WriteString("terminal_output console serial\n")
	secs := (m.Timeout + time.Second - 1) / time.Second
	fmt.Fprintf(&b, "set timeout=%d\n", secs)
	b.WriteString("set timeout_style=menu\n")
	b.WriteString("set default=0\n")
	fmt.Fprintf(&b, "echo '%s'\n", m.title())
	for i, e := range m.Entries {
		fmt.Fprintf(&b, "\nmenuentry 'nowhere: %s' --id image%d {\n", e.Name, i)
		fmt.Fprintf(&b, "\techo 'nowhere: booting %s'\n", e.URL)
		fmt.Fprintf(&b, "\tlinux %s %s\n", KernelPath, m.Cmdline(i))
		fmt.Fprintf(&b, "\tinitrd %s\n", InitrdPath)
		b.WriteString("}\n")
	}
	return b.Bytes(), nil
}

// SYSLINUX returns syslinux.cfg (also isolinux.cfg): menu.c32 on the screen and on the
// first serial port, the first entry the default, booted after the timeout (tenths of a
// second; SYSLINUX's 0 would wait forever, so 0 becomes one tenth). Tab on an entry
// edits its command line.
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
	fmt.Fprintf(&b, "TIMEOUT %d\n", max(tenths, 1))
	fmt.Fprintf(&b, "MENU TITLE %s\n", m.title())
	b.WriteString("DEFAULT image0\n")
	for i, e := range m.Entries {
		fmt.Fprintf(&b, "\nLABEL image%d\n", i)
		fmt.Fprintf(&b, "  MENU LABEL nowhere: %s\n", e.Name)
		fmt.Fprintf(&b, "  LINUX %s\n", KernelPath)
		fmt.Fprintf(&b, "  INITRD %s\n", InitrdPath)
		fmt.Fprintf(&b, "  APPEND %s\n", m.Cmdline(i))
	}
	return b.Bytes(), nil
}
