// Package pxe boots machines on a LAN from a nowhere server without touching the LAN's
// DHCP: a proxyDHCP responder (the PXE specification's "proxyDHCP", as dnsmasq's
// --dhcp-proxy) that answers only PXE and UEFI HTTP Boot clients and never hands out an
// address, a read-only TFTP server for the few boot loaders it names, and an HTTP
// handler for the same loaders (UEFI HTTP Boot). The LAN's own DHCP server still gives
// every machine its address; the proxy only adds which file to boot:
//
//	BIOS PXE ROM (arch 0)           -> TFTP undionly.kpxe (iPXE)       -> /boot.ipxe
//	UEFI PXE (arch 7, 9)            -> TFTP ipxe.efi                   -> /boot.ipxe
//	  with Secure Boot              -> TFTP shimx64.efi -> grubx64.efi -> grub/grub.cfg
//	UEFI HTTP Boot (arch 16)        -> http://SERVER/boot/ipxe.efi (Secure Boot off)
//	arm64 UEFI PXE (arch 11)        -> TFTP shimaa64.efi -> grubaa64.efi -> grub/arm64-efi/grub.cfg
//	arm64 UEFI HTTP Boot (arch 19)  -> http://SERVER/boot/nowhereaa64.efi (a UKI, when given)
//	iPXE (user class "iPXE")        -> http://SERVER/boot.ipxe
//
// docs/boot.md, "On real hardware", has the flags and what was measured.
package pxe

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Kind is how a client boots.
type Kind int

const (
	NotPXE Kind = iota // not a network-booting firmware: never answered
	PXE                // vendor class "PXEClient...": a TFTP boot file
	HTTP               // vendor class "HTTPClient...": a boot file URL
)

func (k Kind) String() string {
	switch k {
	case PXE:
		return "PXE"
	case HTTP:
		return "HTTP"
	}
	return "not PXE"
}

// Client is what a request says about the machine that sent it.
type Client struct {
	Kind    Kind
	Arch    uint16 // option 93's first architecture (0: BIOS)
	HasArch bool   // option 93 was there
	IPXE    bool   // iPXE itself asking (user class "iPXE"): hand it the menu
	Vendor  string // option 60 as sent (at most maxVendor bytes, for the log)
	MAC     net.HardwareAddr
}

// Client architectures (RFC 4578 and the IANA registry) that get a boot file.
const (
	ArchBIOS     = 0  // x86 BIOS
	ArchEFIx64   = 7  // x64 UEFI
	ArchEFIBC    = 9  // "EFI BC", sent by x64 UEFI firmware too (EDK2 before 2013, some vendors)
	ArchEFIx64HT = 16 // x64 UEFI HTTP Boot
	ArchEFIArm64 = 11 // arm64 UEFI
	ArchArm64HT  = 19 // arm64 UEFI HTTP Boot
)

// ArchName names an architecture for the log.
func ArchName(a uint16) string {
	switch a {
	case ArchBIOS:
		return "BIOS"
	case ArchEFIx64:
		return "x64 UEFI"
	case ArchEFIBC:
		return "x64 UEFI (EFI BC)"
	case ArchEFIx64HT:
		return "x64 UEFI HTTP"
	case ArchEFIArm64:
		return "arm64 UEFI"
	case ArchArm64HT:
		return "arm64 UEFI HTTP"
	}
	return fmt.Sprintf("arch %d", a)
}

// maxVendor bounds the vendor class we keep and echo (option 60 is at most 255 bytes
// anyway; PXE's is 32).
const maxVendor = 64

// Classify says what kind of client sent m. Everything comes from the network: a field
// that is missing, too short or malformed makes the client NotPXE (or drops the
// architecture), never a panic.
func Classify(m *dhcpv4.DHCPv4) Client {
	c := Client{MAC: m.ClientHWAddr}
	if m.OpCode != dhcpv4.OpcodeBootRequest {
		return c
	}
	v := m.Options.Get(dhcpv4.OptionClassIdentifier)
	switch {
	case hasPrefix(v, "PXEClient"):
		c.Kind = PXE
	case hasPrefix(v, "HTTPClient"):
		c.Kind = HTTP
	default:
		return c
	}
	if len(v) > maxVendor {
		v = v[:maxVendor]
	}
	c.Vendor = string(v)
	if a := m.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(a) >= 2 {
		c.Arch, c.HasArch = binary.BigEndian.Uint16(a), true
	}
	c.IPXE = isIPXE(m.Options.Get(dhcpv4.OptionUserClassInformation))
	return c
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// isIPXE says whether a user class option (77) says "iPXE": iPXE sends the bare string;
// RFC 3004 wants length-prefixed strings, accepted as well.
func isIPXE(uc []byte) bool {
	if string(uc) == "iPXE" {
		return true
	}
	for len(uc) > 0 {
		n := int(uc[0])
		if n == 0 || 1+n > len(uc) {
			return false
		}
		if string(uc[1:1+n]) == "iPXE" {
			return true
		}
		uc = uc[1+n:]
	}
	return false
}

// Loader file names, as served over TFTP (at the TFTP root) and over HTTP (under /boot/).
const (
	UndionlyKPXE = "undionly.kpxe"
	IPXEEFI      = "ipxe.efi"
	ShimEFI      = "shimx64.efi"
	GrubEFI      = "grubx64.efi" // the name shim loads next to itself; Debian's grubnetx64
	ShimAA64     = "shimaa64.efi"
	GrubAA64     = "grubaa64.efi"    // what shimaa64 loads: Debian's grubnetaa64
	ArmUKI       = "nowhereaa64.efi" // serve --arm64-uki: what arm64 HTTP Boot starts
)

// HTTPLoaderPrefix is where the HTTP handler serves the loaders.
const HTTPLoaderPrefix = "/boot/"

// Config is what the responder answers.
type Config struct {
	Addr       netip.Addr // the server's IPv4 address on the LAN: server id, siaddr, TFTP server
	HTTPBase   string     // the HTTP server as LAN machines reach it: http://ADDR:PORT
	MenuURL    string     // the iPXE menu (HTTPBase + /boot.ipxe)
	SecureBoot bool       // UEFI clients get shim -> GRUB (signed by Microsoft and Debian) instead of iPXE
	// Arm64: arm64 UEFI PXE clients are answered, with Debian's signed arm64 shim and
	// GRUB (there is no arm64 iPXE in Debian), with and without Secure Boot.
	Arm64 bool
	// Arm64UKI: arm64 UEFI HTTP Boot clients are answered with a unified kernel image
	// (ArmUKI): Debian's signed GRUB has no HTTP, so shim -> GRUB cannot boot that way.
	Arm64UKI bool
}

// Boot is the answer to one client.
type Boot struct {
	File string // the boot file: a TFTP file name or an http:// URL
	Via  string // "tftp" or "http"
}

// Choose says what c boots, or false: not a client to answer (not PXE, or an
// architecture without a loader here).
func (cfg *Config) Choose(c Client) (Boot, bool) {
	switch {
	case c.Kind == NotPXE:
		return Boot{}, false
	case c.IPXE:
		// iPXE running (ours, or a NIC ROM's): the menu. Under Secure Boot an iPXE runs
		// only if the firmware let it, so the menu is right there too.
		return Boot{File: cfg.MenuURL, Via: "http"}, true
	case !c.HasArch && c.Kind == PXE:
		// PXE 2.1 clients always send option 93; an old BIOS ROM might not.
		return Boot{File: UndionlyKPXE, Via: "tftp"}, true
	}
	switch {
	case c.Kind == PXE && c.Arch == ArchBIOS:
		return Boot{File: UndionlyKPXE, Via: "tftp"}, true
	case c.Kind == PXE && (c.Arch == ArchEFIx64 || c.Arch == ArchEFIBC):
		if cfg.SecureBoot {
			return Boot{File: ShimEFI, Via: "tftp"}, true
		}
		return Boot{File: IPXEEFI, Via: "tftp"}, true
	case c.Kind == PXE && c.Arch == ArchEFIArm64 && cfg.Arm64:
		return Boot{File: ShimAA64, Via: "tftp"}, true
	case c.Kind == HTTP && c.Arch == ArchArm64HT && cfg.Arm64UKI:
		return Boot{File: strings.TrimSuffix(cfg.HTTPBase, "/") + HTTPLoaderPrefix + ArmUKI, Via: "http"}, true
	case c.Kind == HTTP && c.Arch == ArchEFIx64HT:
		// iPXE even with --secure-boot: Debian 12's signed network GRUB has no http
		// module, so shim -> GRUB started by HTTP Boot cannot read its menu; a machine
		// with Secure Boot on boots by PXE instead (docs/boot.md).
		return Boot{File: strings.TrimSuffix(cfg.HTTPBase, "/") + HTTPLoaderPrefix + IPXEEFI, Via: "http"}, true
	}
	return Boot{}, false
}

// Reply is the proxyDHCP answer to req, or nil: req is not to be answered. port4011
// says whether req came to the PXE boot server port (a DHCPREQUEST there is answered
// with a DHCPACK; on port 67 only DHCPDISCOVERs are answered, with a DHCPOFFER: the
// DHCPREQUESTs there belong to the LAN's DHCP server).
//
// The answer never offers an address: yiaddr is 0 and it carries no lease, mask,
// router or DNS options, so a client takes its address from the LAN's DHCP server and
// only the boot file from here.
func (cfg *Config) Reply(req *dhcpv4.DHCPv4, port4011 bool) (*dhcpv4.DHCPv4, Client, Boot) {
	c := Classify(req)
	b, ok := cfg.Choose(c)
	if !ok {
		return nil, c, b
	}
	var typ dhcpv4.MessageType
	switch mt := req.MessageType(); {
	case mt == dhcpv4.MessageTypeDiscover && !port4011:
		typ = dhcpv4.MessageTypeOffer
	case mt == dhcpv4.MessageTypeRequest && port4011, mt == dhcpv4.MessageTypeInform && port4011:
		typ = dhcpv4.MessageTypeAck
	default:
		return nil, c, b
	}
	if req.HWType != 1 || len(req.ClientHWAddr) != 6 {
		return nil, c, b // Ethernet only: the loaders are
	}
	server := net.IP(cfg.Addr.AsSlice())
	mods := []dhcpv4.Modifier{
		dhcpv4.WithReply(req),
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(server),
		dhcpv4.WithYourIP(net.IPv4zero),
		dhcpv4.WithClientIP(req.ClientIPAddr),
		dhcpv4.WithGatewayIP(req.GatewayIPAddr),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorEcho(c))),
		dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientMachineIdentifier), // option 97: PXE wants it back
		dhcpv4.WithOption(dhcpv4.OptBootFileName(b.File)),
	}
	if c.Kind == PXE {
		// PXE vendor options (43): discovery control 8 = "boot the file named in this
		// offer, no boot server discovery, no prompt" (what dnsmasq's --dhcp-proxy
		// sends), then the end mark.
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{6, 1, 8, 255}))
	}
	resp, err := dhcpv4.New(mods...)
	if err != nil {
		return nil, c, b
	}
	resp.BootFileName = b.File
	if len(resp.BootFileName) > 127 {
		return nil, c, b // does not fit the header's file field
	}
	return resp, c, b
}

// vendorEcho is the vendor class the answer carries: PXE and HTTP Boot clients ignore
// offers without "PXEClient" or "HTTPClient".
func vendorEcho(c Client) string {
	if c.Kind == HTTP {
		return "HTTPClient"
	}
	return "PXEClient"
}
