package pxe

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
)

// Offer is one answer the probe saw.
type Offer struct {
	Server   net.IP // its server identifier (option 54), else siaddr
	YourIP   net.IP // the address offered (0: a proxyDHCP offer)
	BootFile string // the boot file named (header or option 67)
	Vendor   string // option 60
}

// ProbeResult is what answered a PXE-style DHCPDISCOVER on the LAN.
type ProbeResult struct {
	DHCP []Offer // offers of an address (the LAN's DHCP servers)
	PXE  []Offer // offers naming a boot file, or saying PXEClient: another PXE server
}

// afterDHCP is how long the probe keeps listening once a DHCP server has answered, for
// a proxyDHCP that answers a little later.
const afterDHCP = 1500 * time.Millisecond

// Probe broadcasts a DHCPDISCOVER on iface as a BIOS PXE client would (option 60
// PXEClient, option 93 arch 0) and collects the offers until wait has passed, or
// afterDHCP after the first offer of an address. It runs before this server answers, so
// every PXE offer is someone else's. Needs a raw socket (root).
func Probe(ctx context.Context, iface string, wait time.Duration) (*ProbeResult, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	c, err := nclient4.New(iface, nclient4.WithTimeout(time.Second), nclient4.WithRetry(8))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	disc, err := dhcpv4.NewDiscovery(ifc.HardwareAddr,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionBootfileName, dhcpv4.OptionVendorSpecificInformation),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var (
		mu    sync.Mutex
		res   ProbeResult
		timer *time.Timer
	)
	match := func(m *dhcpv4.DHCPv4) bool {
		if m.MessageType() != dhcpv4.MessageTypeOffer {
			return false
		}
		o := Offer{Server: m.ServerIdentifier(), YourIP: m.YourIPAddr, BootFile: m.BootFileName, Vendor: m.ClassIdentifier()}
		if o.Server == nil || o.Server.IsUnspecified() {
			o.Server = m.ServerIPAddr
		}
		if o.BootFile == "" {
			o.BootFile = m.BootFileNameOption()
		}
		mu.Lock()
		defer mu.Unlock()
		for _, seen := range append(res.PXE, res.DHCP...) {
			if seen.Server.Equal(o.Server) && seen.YourIP.Equal(o.YourIP) && seen.BootFile == o.BootFile {
				return false // the answer to a retransmission
			}
		}
		if o.BootFile != "" || len(o.Vendor) >= 9 && o.Vendor[:9] == "PXEClient" {
			res.PXE = append(res.PXE, o)
		}
		if o.YourIP != nil && !o.YourIP.IsUnspecified() {
			res.DHCP = append(res.DHCP, o)
			if timer == nil {
				timer = time.AfterFunc(afterDHCP, cancel)
			}
		}
		return false // keep listening until the deadline
	}
	_, err = c.SendAndRead(ctx, nclient4.DefaultServers, disc, match)
	if timer != nil {
		timer.Stop()
	}
	if err != nil && ctx.Err() == nil && err != nclient4.ErrNoResponse {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return &res, nil
}
