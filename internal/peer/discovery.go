package peer

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// Announcements on the LAN. A sharing node sends one datagram (announce.go) to the
// multicast group with TTL 1 when it starts, every Interval after, and soon after it hears
// a peer it did not know (so a newcomer learns the LAN within a fraction of a second),
// never more often than every minGap. Every node that discovers listens on the group.
// What it hears is a hint: the peer's URL is built from the datagram's source address
// and the announced port, it must announce the image this node reads, the list of peers
// is bounded by the mirror set (MaxPeers), datagrams beyond a rate are dropped unread,
// and a peer that answers badly is demoted by the mirror set like any mirror.

const (
	minGap        = 200 * time.Millisecond // between two announcements of one node
	kickJitter    = 100 * time.Millisecond // spreads the answers to a newcomer
	receiveRate   = 200                    // announcements read per second, at most
	receiveBurst  = 1000
	expireAfter   = 4 // intervals without an announcement before a peer is dropped
	maxInterfaces = 16
)

type discovery struct {
	n      *Node
	ann    Announcement
	group  *net.UDPAddr
	ifaces []net.Interface
	recv   net.PacketConn
	send   *ipv4.PacketConn
	kick   chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

func newID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// discover joins the group on the LAN interfaces (the share's interface when it listens
// on one address), starts listening, and, when sharing, announcing.
func (n *Node) discover() (*discovery, error) {
	group, err := net.ResolveUDPAddr("udp4", n.cfg.Group)
	if err != nil || !group.IP.IsMulticast() {
		return nil, fmt.Errorf("announcement group %q: want a multicast IPv4 address and port", n.cfg.Group)
	}
	var shareIP net.IP
	if n.share != nil {
		shareIP = n.share.ip
	}
	ifaces, err := lanInterfaces(shareIP)
	if err != nil {
		return nil, err
	}
	d := &discovery{n: n, group: group, ifaces: ifaces, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	// Bound to the group address: only the group's datagrams arrive, and several
	// clients on one host can listen at once.
	d.recv, err = lc.ListenPacket(context.Background(), "udp4", group.String())
	if err != nil {
		return nil, fmt.Errorf("listen for announcements on %s: %w", group, err)
	}
	pc := ipv4.NewPacketConn(d.recv)
	joined := 0
	for i := range ifaces {
		if err := pc.JoinGroup(&ifaces[i], &net.UDPAddr{IP: group.IP}); err == nil {
			joined++
		}
	}
	if joined == 0 {
		d.recv.Close()
		return nil, fmt.Errorf("announcements: could not join %s on any interface", group.IP)
	}
	if n.share != nil {
		local := &net.UDPAddr{IP: shareIP}
		if shareIP.IsUnspecified() {
			local = nil
		}
		c, err := net.ListenUDP("udp4", local)
		if err != nil {
			d.recv.Close()
			return nil, fmt.Errorf("announcements: %w", err)
		}
		d.send = ipv4.NewPacketConn(c)
		_ = d.send.SetMulticastTTL(1) // never beyond the link
		_ = d.send.SetMulticastLoopback(true)
		d.ann = Announcement{ID: newID(), Port: uint16(n.share.port), Image: n.cfg.Image}
	}
	d.wg.Add(1)
	go d.listen()
	if d.send != nil {
		d.wg.Add(1)
		go d.announce()
	}
	return d, nil
}

// lanInterfaces returns the interface that holds ip, or, for an unspecified or missing
// ip, every interface that is up and does multicast (loopback only when there is nothing
// else: tests on one host).
func lanInterfaces(ip net.IP) ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out, loop []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp == 0 {
			continue
		}
		if ip != nil && !ip.IsUnspecified() {
			addrs, _ := ifi.Addrs()
			for _, a := range addrs {
				if pn, ok := a.(*net.IPNet); ok && pn.IP.Equal(ip) {
					return []net.Interface{ifi}, nil
				}
			}
			continue
		}
		switch {
		case ifi.Flags&net.FlagLoopback != 0:
			loop = append(loop, ifi)
		case ifi.Flags&net.FlagMulticast != 0:
			out = append(out, ifi)
		}
	}
	if ip != nil && !ip.IsUnspecified() {
		return nil, fmt.Errorf("announcements: no interface has the address %s", ip)
	}
	if len(out) == 0 {
		out = loop
	}
	if len(out) == 0 {
		return nil, errors.New("announcements: no network interface is up")
	}
	return out[:min(len(out), maxInterfaces)], nil
}

func (d *discovery) close() {
	d.once.Do(func() {
		close(d.stop)
		d.recv.Close()
		if d.send != nil {
			d.send.Close()
		}
	})
	d.wg.Wait()
}

// announce sends the announcement now, every Interval, and after kicks (new peers heard),
// at most once per minGap. It also expires peers that went quiet.
func (d *discovery) announce() {
	defer d.wg.Done()
	msg := d.ann.Encode()
	var last time.Time
	send := func() {
		for i := range d.ifaces {
			if err := d.send.SetMulticastInterface(&d.ifaces[i]); err != nil {
				continue
			}
			_, _ = d.send.WriteTo(msg, nil, d.group)
		}
		last = time.Now()
	}
	send()
	tick := time.NewTicker(d.n.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
			d.n.expire(expireAfter * d.n.cfg.Interval)
			send()
		case <-d.kick:
			wait := max(minGap-time.Since(last), 0) + time.Duration(rand.Int64N(int64(kickJitter)))
			select {
			case <-d.stop:
				return
			case <-time.After(wait):
			}
			send()
		}
	}
}

// listen reads announcements, at most receiveRate per second, and adds the peers they name.
func (d *discovery) listen() {
	defer d.wg.Done()
	lim := rate.NewLimiter(receiveRate, receiveBurst)
	buf := make([]byte, MaxAnnouncement+1)
	var expireAt time.Time
	for {
		n, from, err := d.recv.ReadFrom(buf)
		if err != nil {
			select {
			case <-d.stop:
				return
			default:
			}
			time.Sleep(10 * time.Millisecond) // a transient error: never spin
			continue
		}
		if !lim.Allow() {
			continue // a flood: dropped unread
		}
		if d.send == nil && time.Now().After(expireAt) { // listeners that do not announce expire peers here
			d.n.expire(expireAfter * d.n.cfg.Interval)
			expireAt = time.Now().Add(d.n.cfg.Interval)
		}
		src, ok := from.(*net.UDPAddr)
		if !ok || src.IP.IsUnspecified() || src.IP.IsMulticast() {
			continue
		}
		a, err := ParseAnnouncement(buf[:n])
		if err != nil {
			continue // not ours, or hostile: nothing to say on a console
		}
		d.heard(a, src.IP)
	}
}

func (d *discovery) heard(a Announcement, ip net.IP) {
	u := baseURL(ip, int(a.Port))
	if d.send != nil && a.ID == d.ann.ID {
		d.n.setSelf(u) // our own, looped back: how the LAN sees us
		return
	}
	if a.Image != "" && a.Image != d.n.cfg.Image {
		return // reads another image: few chunks in common, and it cannot fetch ours
	}
	d.n.mu.Lock()
	_, known := d.n.seen[u]
	named := d.n.named[u]
	if known {
		d.n.seen[u] = time.Now()
	}
	d.n.mu.Unlock()
	if known || named {
		return
	}
	_ = d.n.addPeer(u, false)
	select {
	case d.kick <- struct{}{}: // tell the newcomer about us soon
	default:
	}
}
