package pxe

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// Ports the responder listens on.
const (
	DHCPPort = 67   // DHCPDISCOVERs, broadcast by every booting client
	PXEPort  = 4011 // the PXE boot server port: DHCPREQUESTs sent to us for the boot file
)

// maxPacket bounds a request (DHCP's own limit is the interface MTU; 1500 bytes in
// practice, 576 the minimum every client must accept).
const maxPacket = 1500

// Responder is a running proxyDHCP server on one interface.
type Responder struct {
	cfg   *Config
	logf  func(format string, args ...any)
	conns []*net.UDPConn
	wg    sync.WaitGroup
	once  sync.Once
}

// Listen binds UDP ports 67 and 4011 on iface (SO_BINDTODEVICE: nothing from another
// interface is answered) for cfg. logf reports each client answered (nil: silent).
func Listen(iface string, cfg Config, logf func(format string, args ...any)) (*Responder, error) {
	if !cfg.Addr.Is4() {
		return nil, fmt.Errorf("pxe: the server address %v is not IPv4", cfg.Addr)
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	r := &Responder{cfg: &cfg, logf: logf}
	for _, port := range []int{DHCPPort, PXEPort} {
		c, err := server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: port})
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("pxe: listen on %s UDP port %d: %w", iface, port, err)
		}
		r.conns = append(r.conns, c)
	}
	return r, nil
}

// Serve answers until Close.
func (r *Responder) Serve() error {
	errs := make([]error, len(r.conns))
	for i, c := range r.conns {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			errs[i] = r.serve(c, i == 1)
		}()
	}
	r.wg.Wait()
	return errors.Join(errs...)
}

// Close stops the responder.
func (r *Responder) Close() error {
	var err error
	r.once.Do(func() {
		for _, c := range r.conns {
			err = errors.Join(err, c.Close())
		}
	})
	return err
}

// serve handles the requests on one port, one at a time: each is answered at once (no
// state, no lookups), so a flood costs CPU, never memory.
func (r *Responder) serve(c *net.UDPConn, port4011 bool) error {
	buf := make([]byte, maxPacket)
	for {
		n, peer, err := c.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue // not DHCP: hostile or broken, either way not ours
		}
		resp, cl, boot := r.cfg.Reply(req, port4011)
		if resp == nil {
			continue
		}
		dst := replyAddr(req, peer, port4011)
		if _, err := c.WriteToUDP(resp.ToBytes(), dst); err != nil {
			r.logf("pxe: %s: answering %s: %v", cl.MAC, dst, err)
			continue
		}
		port := DHCPPort
		if port4011 {
			port = PXEPort
		}
		r.logf("pxe: %s %s (%s) %s on port %d: %s %s", cl.MAC, cl.Kind, clientDesc(cl), req.MessageType(), port, boot.Via, boot.File)
	}
}

func clientDesc(c Client) string {
	s := ArchName(c.Arch)
	if !c.HasArch {
		s = "no arch"
	}
	if c.IPXE {
		s += ", iPXE"
	}
	return s
}

// replyAddr is where the answer to req goes: on port 4011, back where it came from (the
// client has its address by then); on port 67 to the relay (giaddr), else to the
// client's address if it has one, else broadcast (it has none yet: what every booting
// client expects, whatever its broadcast flag).
func replyAddr(req *dhcpv4.DHCPv4, peer *net.UDPAddr, port4011 bool) *net.UDPAddr {
	if port4011 && peer.IP != nil && !peer.IP.IsUnspecified() {
		return peer
	}
	if gw := req.GatewayIPAddr.To4(); gw != nil && !gw.IsUnspecified() {
		return &net.UDPAddr{IP: gw, Port: DHCPPort}
	}
	if ci := req.ClientIPAddr.To4(); ci != nil && !ci.IsUnspecified() {
		return &net.UDPAddr{IP: ci, Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}
