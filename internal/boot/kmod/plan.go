package kmod

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// DefaultLoad are the modules every nowhere boot loads, in this order: the PCI transport
// for virtio devices (virtio_net does not depend on it, so nothing else pulls it in),
// FUSE and loop for the image file, the root filesystems, and overlay. crc32c_generic
// comes before libcrc32c and ext4: there is no modprobe in the initramfs to answer the
// kernel's request for a crc32c implementation, and crc32c-intel does not load on CPUs
// without SSE4.2 (qemu's TCG CPU).
var DefaultLoad = []string{
	"virtio_pci", "fuse", "loop", "squashfs", "crc32c_generic", "libcrc32c", "erofs", "ext4", "overlay",
}

// DefaultDrivers are loaded only when a device they drive is present: network cards of
// virtual and common physical machines, and disks for a cache or overlay.
var DefaultDrivers = []string{
	"virtio_net", "e1000", "e1000e", "igb", "igc", "ixgbe", "r8169", "tg3", "bnx2", "vmxnet3",
	"virtio_blk", "virtio_scsi", "nvme", "ahci", "sd_mod",
	"virtio_rng", // seeds the kernel's RNG in VMs without RDRAND: DHCP and TLS wait for it
}

// Plan is what an initramfs loads at boot. Buses and drivers (the hardware) load in one
// lane and Load (filesystems, FUSE, loop) in another, at the same time: the network
// needs only the first.
type Plan struct {
	Kernel  string   // the kernel version the modules belong to
	Buses   []string // always loaded first in the hardware lane: they reveal devices
	Load    []string // always loaded, in order, each after its dependencies
	Drivers []string // loaded when a device matches one of their aliases
}

// Selection is a Plan with the files it needs.
type Selection struct {
	Plan
	Files   []string // module files relative to the tree, dependencies first
	Aliases []Alias  // aliases of the drivers
	Notes   []string // wanted modules that are built in or absent (defaults only)
}

// Select resolves load and drivers against the tree. Modules built into the kernel are
// dropped. A module the kernel lacks is an error when required (given by the user),
// and a note otherwise (a default that this kernel does not have).
func Select(t *Tree, load, drivers []string, required func(name string) bool) (*Selection, error) {
	s := &Selection{Plan: Plan{Kernel: t.Version}}
	keep := func(names []string, kind string) ([]string, error) {
		var out []string
		for _, n := range names {
			n = Name(n)
			file, builtin := t.Has(n)
			switch {
			case slices.Contains(out, n):
			case file:
				out = append(out, n)
			case builtin:
				s.Notes = append(s.Notes, fmt.Sprintf("%s %s is built into kernel %s", kind, n, t.Version))
			case required(n):
				return nil, fmt.Errorf("module %s: kernel %s has no such module (not in %s/modules.dep nor modules.builtin)", n, t.Version, t.Dir)
			default:
				s.Notes = append(s.Notes, fmt.Sprintf("%s %s: kernel %s has no such module, skipped", kind, n, t.Version))
			}
		}
		return out, nil
	}
	var err error
	if s.Load, err = keep(load, "module"); err != nil {
		return nil, err
	}
	// A module with PCI aliases is a bus (virtio_pci) or a driver someone wants always:
	// it belongs to the hardware lane.
	for _, a := range t.AliasesOf(s.Load) {
		if strings.HasPrefix(a.Pattern, "pci:") && !slices.Contains(s.Buses, a.Module) {
			s.Buses = append(s.Buses, a.Module)
		}
	}
	s.Load = slices.DeleteFunc(s.Load, func(n string) bool { return slices.Contains(s.Buses, n) })
	if s.Drivers, err = keep(drivers, "driver"); err != nil {
		return nil, err
	}
	closure, err := t.Closure(slices.Concat(s.Buses, s.Load, s.Drivers))
	if err != nil {
		return nil, err
	}
	for _, n := range closure {
		s.Files = append(s.Files, t.Path(n))
	}
	s.Aliases = t.AliasesOf(s.Drivers)
	return s, nil
}

// ModulesDep returns a modules.dep that lists only the selected files.
func (s *Selection) ModulesDep(t *Tree) []byte {
	var b bytes.Buffer
	for _, f := range s.Files {
		var deps []string
		for _, d := range t.deps[Name(f)] {
			deps = append(deps, t.Path(d))
		}
		fmt.Fprintf(&b, "%s:", f)
		if len(deps) > 0 {
			fmt.Fprintf(&b, " %s", strings.Join(deps, " "))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ModulesAlias returns a modules.alias with the drivers' aliases.
func (s *Selection) ModulesAlias() []byte {
	var b bytes.Buffer
	for _, a := range s.Aliases {
		fmt.Fprintf(&b, "alias %s %s\n", a.Pattern, a.Module)
	}
	return b.Bytes()
}

// Encode writes the plan as text: "kernel V", then "load NAME" and "driver NAME" lines.
func (p Plan) Encode() []byte {
	var b bytes.Buffer
	b.WriteString("# kernel modules for nowhere's /init: bus and load = always, in order; driver = when a device matches\n")
	fmt.Fprintf(&b, "kernel %s\n", p.Kernel)
	for _, n := range p.Buses {
		fmt.Fprintf(&b, "bus %s\n", n)
	}
	for _, n := range p.Load {
		fmt.Fprintf(&b, "load %s\n", n)
	}
	for _, n := range p.Drivers {
		fmt.Fprintf(&b, "driver %s\n", n)
	}
	return b.Bytes()
}

// ParsePlan reads what Encode wrote.
func ParsePlan(data []byte) (Plan, error) {
	var p Plan
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "kernel":
			p.Kernel = v
		case "bus":
			p.Buses = append(p.Buses, Name(v))
		case "load":
			p.Load = append(p.Load, Name(v))
		case "driver":
			p.Drivers = append(p.Drivers, Name(v))
		default:
			return Plan{}, fmt.Errorf("module plan line %d: unknown word %q", n, k)
		}
	}
	return p, sc.Err()
}
