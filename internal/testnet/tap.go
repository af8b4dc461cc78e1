package testnet

import (
	"errors"
	"fmt"
)

// Tap is a tap device plugged into the switch: a VM that opens it (qemu -netdev tap) is a
// machine on the LAN, next to the hosts, and sees their broadcasts (DHCP, PXE) as they see
// its own. The device lives in the switch's namespace, so the VM's process must run there
// (nsenter --net=NetNS); it goes away with the network.
type Tap struct {
	Name  string // the device, in the switch's namespace
	NetNS string // the switch's namespace, /run/netns/NAME
}

// AddTap creates a tap device named name (at most 15 characters, as every Linux interface)
// on the switch.
func (n *Net) AddTap(name string) (*Tap, error) {
	if name == "" || len(name) > 15 {
		return nil, fmt.Errorf("testnet: tap name %q: want 1 to 15 characters", name)
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, errors.New("testnet: network closed")
	}
	for _, c := range [][]string{
		{"ip", "-n", n.sw, "tuntap", "add", "dev", name, "mode", "tap"},
		{"ip", "-n", n.sw, "link", "set", name, "master", "br0", "up"},
	} {
		if err := run(c...); err != nil {
			return nil, err
		}
	}
	return &Tap{Name: name, NetNS: netnsDir + "/" + n.sw}, nil
}
