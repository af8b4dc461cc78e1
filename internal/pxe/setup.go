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

// GrubMenu returns the generator of grub.cfg for GRUB loaded over the network: the
// store's images (list, on every request), the kernel and initramfs fetched over HTTP
// from base (http://HOST[:PORT], this server as the LAN reaches it) by GRUB's http
// module, as (http,HOST:PORT)/boot/vmlinuz.
func GrubMenu(base string, list func(context.Context) ([]bootmenu.Entry, error), o bootmenu.Options) (func(context.Context) ([]byte, error), error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("--secure-boot: GRUB fetches the kernel over plain http, not %q", base)
	}
	dev := "(http," + u.Host + ")" + strings.TrimSuffix(u.Path, "/")
	return func(ctx context.Context) ([]byte, error) {
		entries, err := list(ctx)
		if err != nil {
			return nil, err
		}
		return bootmenu.GRUB(bootmenu.Menu{
			Base: strings.TrimSuffix(base, "/"), Kernel: dev + bootmenu.KernelPath, Initrd: dev + bootmenu.InitrdPath,
			Entries: entries, Default: o.Default, Timeout: o.Timeout, Mirrors: o.Mirrors, Append: o.Append,
		})
	}, nil
}
