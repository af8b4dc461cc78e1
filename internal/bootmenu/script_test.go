package bootmenu

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// parsed is the structure of a generated script, read back the way iPXE reads it.
type parsed struct {
	items   [][2]string         // label, text (in menu order)
	choose  string              // the choose line
	targets map[string][]string // label -> the lines after it up to the next label
	labels  map[string]int      // label -> how often it is defined
}

func parse(t *testing.T, script string) parsed {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(script, "\n"), "\n")
	if lines[0] != "#!ipxe" {
		t.Fatalf("script does not start with #!ipxe: %q", lines[0])
	}
	p := parsed{targets: map[string][]string{}, labels: map[string]int{}}
	cur := ""
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "item ") && !strings.HasPrefix(l, "item --gap"):
			f := strings.SplitN(l, " ", 3)
			p.items = append(p.items, [2]string{f[1], f[2]})
		case strings.HasPrefix(l, "choose "):
			p.choose = l
		case strings.HasPrefix(l, ":"):
			cur = l[1:]
			p.labels[cur]++
		case cur != "" && l != "":
			p.targets[cur] = append(p.targets[cur], l)
		}
	}
	return p
}

func testMenu() Menu {
	return Menu{
		Base: "http://10.0.2.100:8080/store", Kernel: "http://10.0.2.100:8080/boot/vmlinuz",
		Initrd: "http://10.0.2.100:8080/boot/initrd.img",
		Entries: []Entry{
			{Name: "alpine-3.20", Version: 2, Size: 64 << 20},
			{Name: "debian_12.v2", Version: 7, Size: 512 << 20},
			{Name: "x"},
		},
		Default: "debian_12.v2", Timeout: 3 * time.Second,
		Mirrors: []string{"http://mirror.example/nowhere/"},
		Append:  "console=ttyS0  nowhere.cache=/dev/vda",
	}
}

func TestScriptListsEveryImageDefaultFirst(t *testing.T) {
	b, err := Script(testMenu())
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, string(b))
	var names []string
	for _, it := range p.items[:len(p.items)-1] { // the last is the shell
		names = append(names, strings.Fields(it[1])[0])
	}
	if got := strings.Join(names, ","); got != "debian_12.v2,alpine-3.20,x" {
		t.Errorf("menu order %s: want the default first, then the others in their order", got)
	}
	if p.items[0][1] != "debian_12.v2 (version 7, 512 MiB)" || p.items[2][1] != "x" {
		t.Errorf("item texts: %q", p.items)
	}
	if last := p.items[len(p.items)-1]; last[0] != "shell" {
		t.Errorf("last item %q: want the iPXE shell", last)
	}
	if want := "choose --default " + p.items[0][0] + " --timeout 3000 target || goto shell"; p.choose != want {
		t.Errorf("choose line %q, want %q", p.choose, want)
	}
	// Every item's label is defined exactly once and boots its own image.
	for _, it := range p.items[:len(p.items)-1] {
		label, name := it[0], strings.Fields(it[1])[0]
		if p.labels[label] != 1 {
			t.Errorf("label %q defined %d times", label, p.labels[label])
		}
		body := p.targets[label]
		if len(body) != 4 {
			t.Fatalf("entry %s: %q", name, body)
		}
		kernel := strings.Fields(body[1])
		want := []string{"kernel", "http://10.0.2.100:8080/boot/vmlinuz", "initrd=initrd.img",
			"nowhere.image=http://10.0.2.100:8080/store/images/" + name,
			"nowhere.mirror=http://mirror.example/nowhere", "console=ttyS0", "nowhere.cache=/dev/vda", "||", "goto", "failed"}
		if strings.Join(kernel, " ") != strings.Join(want, " ") {
			t.Errorf("entry %s kernel line:\n got %q\nwant %q", name, kernel, want)
		}
		if body[2] != "initrd --name initrd.img http://10.0.2.100:8080/boot/initrd.img || goto failed" || body[3] != "boot || goto failed" {
			t.Errorf("entry %s: %q", name, body)
		}
	}
	if p.labels["failed"] != 1 || p.labels["shell"] != 1 {
		t.Errorf("labels: %v", p.labels)
	}
	// No label is an image name: names never reach goto.
	for l := range p.labels {
		if !regexp.MustCompile(`^(image\d+|failed|shell)$`).MatchString(l) {
			t.Errorf("unexpected label %q", l)
		}
	}
}

func TestScriptDefaultsToTheFirstEntry(t *testing.T) {
	m := testMenu()
	m.Default, m.Timeout, m.Mirrors, m.Append = "", 0, nil, ""
	b, err := Script(m)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, string(b))
	if !strings.HasPrefix(p.items[0][1], "alpine-3.20 ") {
		t.Errorf("first item %q", p.items[0])
	}
	if !strings.Contains(p.choose, "--timeout 5000") {
		t.Errorf("choose %q: want the default timeout", p.choose)
	}
	if k := p.targets[p.items[0][0]][1]; strings.Contains(k, "mirror") || !strings.HasSuffix(k, "nowhere.image=http://10.0.2.100:8080/store/images/alpine-3.20 || goto failed") {
		t.Errorf("kernel line %q", k)
	}
}

// Anything iPXE would expand (${...}), split (spaces) or quote is refused, not written.
func TestScriptRefusesWhatIPXEWouldInterpret(t *testing.T) {
	for _, tc := range []struct {
		what string
		edit func(*Menu)
		want string
	}{
		{"name with ${}", func(m *Menu) { m.Entries[0].Name = "a${net0/mac}" }, "image name"},
		{"name with a space", func(m *Menu) { m.Entries[0].Name = "a b" }, "image name"},
		{"name with a newline", func(m *Menu) { m.Entries[0].Name = "a\nshell" }, "image name"},
		{"name starting with -", func(m *Menu) { m.Entries[0].Name = "--gap" }, "image name"},
		{"duplicate", func(m *Menu) { m.Entries[1].Name = m.Entries[0].Name; m.Default = "" }, "listed twice"},
		{"unknown default", func(m *Menu) { m.Default = "nope" }, `default image "nope"`},
		{"no images", func(m *Menu) { m.Entries = nil }, "no images"},
		{"base with $", func(m *Menu) { m.Base = "http://h/${x}" }, "expand"},
		{"kernel not http", func(m *Menu) { m.Kernel = "tftp://h/k" }, "http"},
		{"mirror with a space", func(m *Menu) { m.Mirrors = []string{"http://h/a b"} }, "expand or split"},
		{"append with ${}", func(m *Menu) { m.Append = "x=${ip}" }, "kernel command line"},
		{"append with a newline", func(m *Menu) { m.Append = "a\nshell" }, "kernel command line"},
		{"title with a newline", func(m *Menu) { m.Title = "t\nshell" }, "title"},
	} {
		m := testMenu()
		tc.edit(&m)
		b, err := Script(m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v (want one naming %q); script:\n%s", tc.what, err, tc.want, b)
		}
	}
}

// TestForArch: of each image, a machine's menu offers its own architecture's version,
// else one for any architecture, and never another architecture's alone.
func TestForArch(t *testing.T) {
	es := []Entry{
		{Name: "debian", Version: 3, Arch: "amd64"}, {Name: "debian", Version: 2, Arch: "arm64"},
		{Name: "data", Version: 1},
		{Name: "pi", Version: 5, Arch: "arm64"},
		{Name: "old", Version: 4}, {Name: "old", Version: 6, Arch: "arm64"},
	}
	for arch, want := range map[string][]Entry{
		"amd64": {{Name: "debian", Version: 3, Arch: "amd64"}, {Name: "data", Version: 1}, {Name: "old", Version: 4}},
		"arm64": {{Name: "debian", Version: 2, Arch: "arm64"}, {Name: "data", Version: 1}, {Name: "pi", Version: 5, Arch: "arm64"}, {Name: "old", Version: 6, Arch: "arm64"}},
	} {
		if got := ForArch(es, arch); !slices.Equal(got, want) {
			t.Errorf("ForArch(%s) = %v, want %v", arch, got, want)
		}
	}
}
