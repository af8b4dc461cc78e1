package bootmenu

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func grubMenu() Menu {
	return Menu{
		Base: "http://10.0.0.2:8080", Kernel: "/vmlinuz", Initrd: "/initrd.img",
		Entries: []Entry{
			{Name: "alpha", Version: 3},
			{Name: "debian", URL: "http://boot.example.org/store/images/debian"},
		},
		Default: "debian", Timeout: 1500 * time.Millisecond,
		Mirrors: []string{"http://mirror2.example.org/store/"},
		Append:  "console=ttyS0   panic=-1",
	}
}

// TestGRUBMenu checks the entries, their order and their command lines, and that GRUB's
// own parser (grub-script-check, from grub-common) accepts the file.
func TestGRUBMenu(t *testing.T) {
	cfg, err := GRUB(grubMenu())
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	entries := regexp.MustCompile(`(?m)^menuentry '([^']*)' --id (\S+) \{$`).FindAllStringSubmatch(s, -1)
	if len(entries) != 2 || !strings.HasPrefix(entries[0][1], "debian") || entries[1][1] != "alpha (version 3)" {
		t.Fatalf("entries %q, want debian (the default) then alpha:\n%s", entries, s)
	}
	for _, want := range []string{
		"set timeout=2\n", "set default=0\n", "terminal_output console serial",
		"  linux /vmlinuz nowhere.image=http://boot.example.org/store/images/debian nowhere.mirror=http://mirror2.example.org/store console=ttyS0 panic=-1\n",
		"  linux /vmlinuz nowhere.image=http://10.0.0.2:8080/images/alpha nowhere.mirror=http://mirror2.example.org/store console=ttyS0 panic=-1\n",
		"  initrd /initrd.img\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, s)
		}
	}
	check, err := exec.LookPath("grub-script-check")
	if err != nil {
		t.Fatalf("grub-script-check (package grub-common) is needed to check the menu: %v", err)
	}
	f := filepath.Join(t.TempDir(), "grub.cfg")
	if err := os.WriteFile(f, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(check, f).CombinedOutput(); err != nil {
		t.Fatalf("grub-script-check refuses the menu: %v\n%s\n%s", err, out, s)
	}
}

// TestGRUBMenuRefusesWhatGRUBWouldExpand: nothing from the command line or an image URL
// can add commands or variables to the menu.
func TestGRUBMenuRefusesWhatGRUBWouldExpand(t *testing.T) {
	for name, change := range map[string]func(*Menu){
		"append with $":        func(m *Menu) { m.Append = "root=$x" },
		"append with ;":        func(m *Menu) { m.Append = "a; reboot" },
		"append with newline":  func(m *Menu) { m.Append = "a\n}" },
		"url with quote":       func(m *Menu) { m.Entries[1].URL = "http://x/'a" },
		"url with space":       func(m *Menu) { m.Entries[1].URL = "http://x/a b" },
		"url not http":         func(m *Menu) { m.Entries[1].URL = "ftp://x/a" },
		"kernel with brace":    func(m *Menu) { m.Kernel = "/vmlinuz}" },
		"no initramfs":         func(m *Menu) { m.Initrd = "" },
		"mirror with &":        func(m *Menu) { m.Mirrors = []string{"http://x/?a&b"} },
		"bad image name":       func(m *Menu) { m.Entries[0].Name = "a'b" },
		"missing default":      func(m *Menu) { m.Default = "nope" },
		"no entries":           func(m *Menu) { m.Entries = nil },
		"title with backslash": func(m *Menu) { m.Title = `a\` },
	} {
		m := grubMenu()
		change(&m)
		if cfg, err := GRUB(m); err == nil {
			t.Errorf("%s: accepted:\n%s", name, cfg)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
}
