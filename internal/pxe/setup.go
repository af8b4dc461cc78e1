package pxe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/bootmenu"
)

// InterfaceIPv4 returns iface's first IPv4 address.
func InterfaceIPv4(iface string) (netip.Addr, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--pxe %s: no such network interface", iface)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--pxe %s: %w", iface, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("--pxe %s: the interface has no IPv4 address (PXE is IPv4)", iface)
}

// GRUB's TFTP names of the kernel and the initramfs: Debian 12's signed network GRUB has
// no http module (and, locked down by Secure Boot, cannot load one), so it fetches both
// over TFTP from the server it was started from.
const (
	GrubKernel = "boot/vmlinuz"
	GrubInitrd = "boot/initrd.img"
	// arm64 machines' kernel and initramfs, beside the x86 ones.
	GrubArm64Kernel = "boot/arm64/vmlinuz"
	GrubArm64Initrd = "boot/arm64/initrd.img"
)

// GrubMenu returns the generator of the GRUB menu of machines of arch (amd64: for
// --secure-boot, arm64: for every arm64 machine): the store's images for that
// architecture (list, on every request, through bootmenu.ForArch), each booting the
// architecture's kernel and initramfs (boot/vmlinuz, or boot/arm64/vmlinuz) from GRUB's
// own server (TFTP) with nowhere.image= naming the image at base (HTTP: the root streams
// over HTTP as always).
func GrubMenu(base, arch string, list func(context.Context) ([]bootmenu.Entry, error), o bootmenu.Options) (func(context.Context) ([]byte, error), error) {
	kernel, initrd := GrubKernel, GrubInitrd
	if arch == "arm64" {
		kernel, initrd = GrubArm64Kernel, GrubArm64Initrd
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--secure-boot: the store's base URL %q is not an http(s) URL", base)
	}
	return func(ctx context.Context) ([]byte, error) {
		entries, err := list(ctx)
		if err != nil {
			return nil, err
		}
		return bootmenu.GRUB(bootmenu.Menu{
			Base: strings.TrimSuffix(base, "/"), Kernel: "/" + kernel, Initrd: "/" + initrd, Entries: bootmenu.ForArch(entries, arch),
			Default: o.Default, Timeout: o.Timeout, Mirrors: o.Mirrors, Append: o.Append,
		})
	}, nil
}

// GrubDispatch is grub/grub.cfg when arm64 machines are served too: Debian's arm64
// network GRUB reads only $prefix/grub.cfg (x86's reads x86_64-efi/grub.cfg first), so
// this one file sends each GRUB to its own architecture's menu by $grub_cpu.
func GrubDispatch() []byte {
	return []byte(`# nowhere serve --pxe: each architecture's GRUB gets the menu of its own images.
if [ "$grub_cpu" = "arm64" ]; then
	configfile $prefix/arm64-efi/grub.cfg
else
	configfile $prefix/x86_64-efi/grub.cfg
fi
`)
}
