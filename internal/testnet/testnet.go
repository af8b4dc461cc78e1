// Package testnet builds small networks of hosts for tests and benchmarks: Linux network
// namespaces joined to a bridge (in a namespace of its own) by veth pairs, with optional
// bandwidth limits (tc tbf) on a host's link. Nothing touches the machine's own network:
// every address lives in a namespace the network created, and Close removes them all.
// It needs root and the ip and tc commands (iproute2).
package testnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/vishvananda/netns"
)

// Net is a LAN: a bridge and the hosts plugged into it.
type Net struct {
	prefix string // unique per network: names of namespaces and links start with it
	subnet string // first three octets, e.g. "10.213.7"
	sw     string // the namespace holding the bridge
	hosts  []*Host
}

// Host is a namespace with one interface on the LAN.
type Host struct {
	Name string // the namespace (as in /run/netns/NAME)
	IP   string // its address on the LAN
	Dev  string // its interface
	n    *Net
}

var counter atomic.Int64

// Available reports why networks cannot be built here ("" when they can).
func Available() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces)"
	}
	for _, c := range []string{"ip", "tc", "nsenter"} {
		if _, err := exec.LookPath(c); err != nil {
			return c + " is not installed"
		}
	}
	return ""
}

// New creates the bridge of a LAN whose hosts get addresses in 10.SUBNET.0/24 (the
// subnet number only needs to differ between networks that share hosts, which ours
// never do).
func New(subnet int) (*Net, error) {
	id := counter.Add(1)
	n := &Net{prefix: fmt.Sprintf("nw%d%d", os.Getpid()%100000, id), subnet: fmt.Sprintf("10.%d.%d", 200+subnet%50, id%250)}
	n.sw = n.prefix + "sw"
	if err := run("ip", "netns", "add", n.sw); err != nil {
		return nil, err
	}
	for _, c := range [][]string{
		{"ip", "-n", n.sw, "link", "add", "lan0", "type", "bridge", "mcast_snooping", "0"},
		{"ip", "-n", n.sw, "link", "set", "lan0", "up"},
	} {
		if err := run(c...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// Prefix is the network's unique name prefix.
func (n *Net) Prefix() string { return n.prefix }

// AddHost creates a namespace plugged into the bridge, with the address 10.x.y.NUM/24.
func (n *Net) AddHost(label string, num int) (*Host, error) {
	h := &Host{Name: n.prefix + label, IP: fmt.Sprintf("%s.%d", n.subnet, num), Dev: "eth0", n: n}
	outer := fmt.Sprintf("%sv%d", n.prefix, num)
	if len(outer) > 15 {
		return nil, fmt.Errorf("link name %s too long", outer)
	}
	if err := run("ip", "netns", "add", h.Name); err != nil {
		return nil, err
	}
	n.hosts = append(n.hosts, h)
	for _, c := range [][]string{
		{"ip", "-n", h.Name, "link", "add", "eth0", "type", "veth", "peer", "name", outer, "netns", n.sw},
		{"ip", "-n", n.sw, "link", "set", outer, "master", "lan0", "up"},
		{"ip", "-n", h.Name, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"ip", "-n", h.Name, "link", "set", "eth0", "up"},
		{"ip", "-n", h.Name, "link", "set", "lo", "up"},
	} {
		if err := run(c...); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Limit shapes what the host sends to the LAN: rate (tc's notation: "40mbit") with a
// token bucket of burst bytes; queued packets wait at most 100 ms... and beyond are
// dropped, as a real link's buffer.
func (h *Host) Limit(rate string, burst int) error {
	return run("tc", "-n", h.Name, "qdisc", "replace", "dev", h.Dev, "root", "tbf",
		"rate", rate, "burst", fmt.Sprint(burst), "latency", "100ms")
}

// Command returns cmd to run inside the host's network namespace (only: it shares the
// caller's mounts, so a FUSE mount it makes is visible to the test).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + h.Name, "--", name}, args...)...)
}

// Do runs fn on a thread inside the host's network namespace: sockets fn opens (a
// listener, a dialer's connections) stay in that namespace after Do returns.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.GetFromName(h.Name)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// URL returns http://IP:port.
func (h *Host) URL(port int) string { return fmt.Sprintf("http://%s:%d", h.IP, port) }

// Close deletes every namespace of the network (links go with them).
func (n *Net) Close() error {
	var errs []error
	for _, h := range n.hosts {
		if err := run("ip", "netns", "del", h.Name); err != nil {
			errs = append(errs, err)
		}
	}
	n.hosts = nil
	if n.sw != "" {
		if err := run("ip", "netns", "del", n.sw); err != nil {
			errs = append(errs, err)
		}
		n.sw = ""
	}
	return errors.Join(errs...)
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func exec_(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}
