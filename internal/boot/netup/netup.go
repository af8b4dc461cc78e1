// Package netup brings up the network a boot fetches its root over: DHCP on every
// Ethernet interface at once (u-root's dhclient), or a static address from the kernel
// command line. The kernel's own IP autoconfiguration (ip=) is not built into the
// distribution kernels nowhere boots, so /init does it.
package netup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"

	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
)

// Result is the configuration in force.
type Result struct {
	Iface   string
	Method  string // dhcp or static
	Addr    netip.Prefix
	Gateway netip.Addr
	DNS     []netip.Addr
}

func (r Result) String() string {
	s := fmt.Sprintf("%s %s by %s", r.Iface, r.Addr, r.Method)
	if r.Gateway.IsValid() {
		s += ", gateway " + r.Gateway.String()
	}
	if len(r.DNS) > 0 {
		var d []string
		for _, a := range r.DNS {
			d = append(d, a.String())
		}
		s += ", dns " + strings.Join(d, " ")
	}
	return s
}

// Links returns the interfaces that can carry the boot: physical (device) links with a
// hardware address, sorted by name; loopback, bridges, bonds' members and tunnels are left
// out.
func Links() ([]netlink.Link, error) {
	all, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []netlink.Link
	for _, l := range all {
		a := l.Attrs()
		if l.Type() != "device" || a.Flags&net.FlagLoopback != 0 || len(a.HardwareAddr) == 0 {
			continue
		}
		out = append(out, l)
	}
	out = dhclient.FilterBondedInterfaces(out, false)
	sort.Slice(out, func(i, j int) bool { return out[i].Attrs().Name < out[j].Attrs().Name })
	return out, nil
}

// WaitLinks waits until an interface appears (a driver may still be probing).
func WaitLinks(ctx context.Context) ([]netlink.Link, error) {
	for {
		links, err := Links()
		if err == nil && len(links) > 0 {
			return links, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("no network interface (is the NIC's driver in the initramfs? see `nowhere initramfs --driver`)")
			}
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Up configures the network as ip says and returns what it did. It makes one attempt
// (DHCP itself retries a few times); the caller decides how long to go on trying.
func Up(ctx context.Context, ip cmdline.IP, links []netlink.Link) (Result, error) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	if ip.DHCP {
		return dhcp(ctx, links)
	}
	return static(ip, links[0])
}

func dhcp(ctx context.Context, links []netlink.Link) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the attempts on the other interfaces
	results := dhclient.SendRequests(ctx, links, true, false,
		dhclient.Config{Timeout: 3 * time.Second, Retries: 2}, 10*time.Second)
	var errs []string
	for {
		var r *dhclient.Result
		select {
		case r = <-results:
		case <-ctx.Done():
			go drain(results)
			return Result{}, fmt.Errorf("dhcp: no lease: %w (%s)", ctx.Err(), strings.Join(errs, "; "))
		}
		if r == nil {
			break
		}
		if r.Err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", r.Interface.Attrs().Name, r.Err))
			continue
		}
		p, ok := r.Lease.(*dhclient.Packet4)
		if !ok {
			continue
		}
		if err := p.Configure(); err != nil {
			errs = append(errs, fmt.Sprintf("%s: configure: %v", r.Interface.Attrs().Name, err))
			continue
		}
		res := Result{Iface: r.Interface.Attrs().Name, Method: "dhcp"}
		lease := p.Lease()
		ones, _ := lease.Mask.Size()
		if a, ok := netip.AddrFromSlice(lease.IP.To4()); ok {
			res.Addr = netip.PrefixFrom(a, ones)
		}
		if gw := p.P.Router(); len(gw) > 0 {
			res.Gateway, _ = netip.AddrFromSlice(gw[0].To4())
		}
		for _, d := range p.P.DNS() {
			if a, ok := netip.AddrFromSlice(d.To4()); ok {
				res.DNS = append(res.DNS, a)
			}
		}
		go drain(results) // let the other attempts end in the background
		return res, nil
	}
	if len(errs) == 0 {
		errs = append(errs, "no interface came up")
	}
	return Result{}, fmt.Errorf("dhcp: %s", strings.Join(errs, "; "))
}

func drain(results chan *dhclient.Result) {
	for range results {
	}
}

func static(ip cmdline.IP, link netlink.Link) (Result, error) {
	name := link.Attrs().Name
	if err := netlink.LinkSetUp(link); err != nil {
		return Result{}, fmt.Errorf("%s: up: %w", name, err)
	}
	addr := &netlink.Addr{IPNet: prefixToIPNet(ip.Addr)}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return Result{}, fmt.Errorf("%s: add %s: %w", name, ip.Addr, err)
	}
	res := Result{Iface: name, Method: "static", Addr: ip.Addr, Gateway: ip.Gateway}
	if ip.Gateway.IsValid() {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.IP(ip.Gateway.AsSlice())}
		if err := netlink.RouteReplace(route); err != nil {
			return Result{}, fmt.Errorf("%s: default route via %s: %w", name, ip.Gateway, err)
		}
	}
	if ip.DNS.IsValid() {
		res.DNS = []netip.Addr{ip.DNS}
		if err := os.WriteFile(dhclient.ResolvConfPath, []byte("nameserver "+ip.DNS.String()+"\n"), 0o644); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
