package bootmenu

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// GRUB returns a grub.cfg for m: the same menu as Script, for machines that start GRUB
// rather than iPXE (Debian's signed GRUB behind shim under Secure Boot, from a disk or
// over the network). One menuentry per entry, the default first and preselected; after
// m.Timeout (whole seconds, at least one) the default boots. The menu is on the screen and
// on the first serial port, and each entry is plain `linux`/`initrd` lines, so the kernel
// command line is visible and editable with GRUB's 'e'.
//
// Here m.Kernel and m.Initrd are GRUB file names, not URLs: "/vmlinuz" on the device GRUB
// was loaded from, "(http,10.0.0.2:80)/boot/vmlinuz" over HTTP. An entry with a URL boots
// that image; one without boots m.Base/images/NAME.
func GRUB(m Menu) ([]byte, error) {
	if len(m.Entries) == 0 {
		return nil, fmt.Errorf("boot menu: no images")
	}
	for _, f := range []struct{ what, s string }{
		{"kernel", m.Kernel}, {"initramfs", m.Initrd},
	} {
		if f.s == "" {
			return nil, fmt.Errorf("boot menu: no %s file", f.what)
		}
		if err := checkGRUBWord(f.what+" file", f.s); err != nil {
			return nil, err
		}
	}
	urls := append([]string(nil), m.Mirrors...)
	for _, e := range m.Entries {
		if e.URL == "" {
			urls = append(urls, m.Base)
		} else {
			urls = append(urls, e.URL)
		}
	}
	for _, u := range urls {
		if err := checkURL(u); err != nil {
			return nil, fmt.Errorf("boot menu: %w", err)
		}
		if err := checkGRUBWord("URL", u); err != nil {
			return nil, err
		}
	}
	appendArgs := strings.Join(strings.Fields(m.Append), " ")
	if err := checkGRUBText("kernel command line", appendArgs); err != nil {
		return nil, err
	}
	if err := checkGRUBText("title", m.Title); err != nil {
		return nil, err
	}
	entries, err := ordered(m.Entries, m.Default)
	if err != nil {
		return nil, err
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	secs := int((timeout + time.Second - 1) / time.Second)

	var b bytes.Buffer
	b.WriteString("# nowhere boot menu: each entry boots the kernel and the nowhere initramfs,\n")
	b.WriteString("# which stream the image named on the kernel command line (docs/boot.md).\n")
	b.WriteString("# Press 'e' on an entry to see and edit its kernel command line.\n")
	// A machine without a serial port keeps the screen alone.
	b.WriteString("if serial --unit=0 --speed=115200; then\n")
	b.WriteString("  terminal_input console serial\n  terminal_output console serial\nfi\n")
	fmt.Fprintf(&b, "set timeout=%d\nset default=0\n", secs)
	if m.Title != "" {
		fmt.Fprintf(&b, "echo '%s'\n", m.Title)
	}
	for i, e := range entries {
		image := e.URL
		if image == "" {
			image = strings.TrimSuffix(m.Base, "/") + "/images/" + e.Name
		}
		args := []string{"nowhere.image=" + image}
		for _, mir := range m.Mirrors {
			args = append(args, "nowhere.mirror="+strings.TrimSuffix(mir, "/"))
		}
		if appendArgs != "" {
			args = append(args, appendArgs)
		}
		fmt.Fprintf(&b, "\nmenuentry '%s' --id %s {\n", describe(e), label(i))
		fmt.Fprintf(&b, "  echo 'nowhere: booting image %s from %s'\n", e.Name, image)
		fmt.Fprintf(&b, "  linux %s %s\n", m.Kernel, strings.Join(args, " "))
		fmt.Fprintf(&b, "  initrd %s\n", m.Initrd)
		b.WriteString("}\n")
	}
	return b.Bytes(), nil
}

// grubSpecial are the characters GRUB's script language expands, quotes, comments or
// splits on; refusing them keeps every value one literal word (or, in quotes, one string).
const grubSpecial = "$;{}|&<>'\"\\#!\r\n\x00"

func checkGRUBWord(what, s string) error {
	if strings.ContainsAny(s, grubSpecial+" \t") {
		return fmt.Errorf("boot menu: %s %q: characters GRUB would expand or split on ($ ; { } | & < > quotes backslash # ! whitespace)", what, s)
	}
	return nil
}

func checkGRUBText(what, s string) error {
	if strings.ContainsAny(s, grubSpecial) {
		return fmt.Errorf("boot menu: %s %q: characters GRUB would expand or quote ($ ; { } | & < > quotes backslash # ! newline)", what, s)
	}
	return nil
}
