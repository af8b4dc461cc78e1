package kmod

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeTree writes a module directory shaped like Debian's 6.1 kernel (paths and
// dependency lines copied from its modules.dep).
func fakeTree(t *testing.T) *Tree {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-56-amd64")
	files := map[string]string{
		"modules.dep": `kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/crypto/crc32c_generic.ko:
kernel/lib/libcrc32c.ko:
kernel/lib/crc-t10dif.ko.xz:
`,
		"modules.builtin": "kernel/fs/squashfs/squashfs.ko\n",
		"modules.alias": `alias virtio:d00000001v* virtio_net
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias fs-ext4 ext4
`,
	}
	for name, content := range files {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestClosureLoadsDependenciesFirst(t *testing.T) {
	tr := fakeTree(t)
	got, err := tr.Closure([]string{"virtio_pci", "virtio-net", "crc32c_generic", "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
		"failover", "net_failover", "virtio_net", "crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure:\n got %v\nwant %v", got, want)
	}
	if Name("kernel/lib/crc-t10dif.ko.xz") != "crc_t10dif" {
		t.Errorf("Name(crc-t10dif.ko.xz) = %q", Name("kernel/lib/crc-t10dif.ko.xz"))
	}
}

func TestSelectSkipsBuiltinAndMissingDefaultsButNotRequired(t *testing.T) {
	tr := fakeTree(t)
	notRequired := func(string) bool { return false }
	s, err := Select(tr, []string{"virtio_pci", "squashfs", "crc32c_generic", "ext4", "erofs"}, []string{"virtio_net", "e1000e"}, notRequired)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Load, []string{"crc32c_generic", "ext4"}) {
		t.Errorf("load = %v", s.Load)
	}
	if !reflect.DeepEqual(s.Buses, []string{"virtio_pci"}) {
		t.Errorf("buses = %v, want virtio_pci (it has PCI aliases)", s.Buses)
	}
	if !reflect.DeepEqual(s.Drivers, []string{"virtio_net"}) {
		t.Errorf("drivers = %v", s.Drivers)
	}
	notes := strings.Join(s.Notes, "\n")
	for _, want := range []string{"squashfs is built into", "erofs: kernel 6.1.0-56-amd64 has no such module", "e1000e"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q lack %q", notes, want)
		}
	}
	if len(s.Files) != 13 || s.Files[0] != "kernel/drivers/virtio/virtio_ring.ko" {
		t.Errorf("files = %v", s.Files)
	}
	if len(s.Aliases) != 1 || s.Aliases[0].Module != "virtio_net" {
		t.Errorf("aliases = %v, want virtio_net's only", s.Aliases)
	}
	dep := string(s.ModulesDep(tr))
	if !strings.Contains(dep, "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko") {
		t.Errorf("trimmed modules.dep:\n%s", dep)
	}
	if strings.Contains(dep, "crc-t10dif") {
		t.Errorf("trimmed modules.dep lists an unselected module:\n%s", dep)
	}

	_, err = Select(tr, []string{"erofs"}, nil, func(n string) bool { return n == "erofs" })
	if err == nil || !strings.Contains(err.Error(), "erofs") {
		t.Errorf("a required missing module: err = %v", err)
	}
}

func TestOpenTreeWithoutModulesDepSaysRunDepmod(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "6.1.0-1-amd64")
	os.MkdirAll(dir, 0o755)
	_, err := OpenTree(dir)
	if err == nil || !strings.Contains(err.Error(), "depmod") {
		t.Errorf("err = %v, want a hint to run depmod", err)
	}
}

func TestPlanRoundTrip(t *testing.T) {
	p := Plan{Kernel: "6.1.0-56-amd64", Buses: []string{"virtio_pci"}, Load: []string{"fuse"}, Drivers: []string{"virtio_net"}}
	back, err := ParsePlan(p.Encode())
	if err != nil || !reflect.DeepEqual(p, back) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if _, err := ParsePlan([]byte("kernel x\nunload fuse\n")); err == nil {
		t.Error("ParsePlan accepted an unknown line")
	}
}

func TestMatchesUsesModaliasPatterns(t *testing.T) {
	aliases := []Alias{{"virtio:d00000001v*", "virtio_net"}, {"pci:v00008086d000010D3sv*sd*bc*sc*i*", "e1000e"}}
	present := []string{"virtio:d00000001v00001AF4", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"}
	if !Matches(aliases, "virtio_net", present) {
		t.Error("virtio_net should match its device")
	}
	if Matches(aliases, "e1000e", present) {
		t.Error("e1000e matched without an Intel NIC")
	}
	if !Matches(aliases, "e1000e", []string{"pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"}) {
		t.Error("e1000e should match an 82574L")
	}
}

func TestModaliasesReadsSysfsLayout(t *testing.T) {
	bus := t.TempDir()
	for dev, alias := range map[string]string{"pci/devices/0000:00:03.0": "pci:v00001AF4d00001000\n", "virtio/devices/virtio0": "virtio:d00000001v00001AF4\n"} {
		os.MkdirAll(filepath.Join(bus, dev), 0o755)
		os.WriteFile(filepath.Join(bus, dev, "modalias"), []byte(alias), 0o444)
	}
	got := Modaliases(bus)
	if len(got) != 2 || !Matches([]Alias{{"virtio:d00000001v*", "virtio_net"}}, "virtio_net", got) {
		t.Errorf("modaliases = %q", got)
	}
}
