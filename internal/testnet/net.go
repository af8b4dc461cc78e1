// Package testnet builds emulated networks on this machine, for tests and benchmarks. The
// method: every host is a Linux network namespace of its own with one interface (eth0),
// the far end of a veth pair plugged into a switch, a Linux bridge in a namespace of its
// own (multicast snooping off, so multicast reaches every port as on a plain switch).
// A host's link can be limited in bandwidth in each direction by tc's token bucket filter
// (tbf): on the host's eth0 for what it sends, on its switch port for what it receives.
// Round-trip time is added by a delaying TCP proxy (Proxy) in the client's namespace, as
// this kernel has no netem. Scenario and Path are the WAN links of the boot benchmark;
// docs/benchmarks.md, "WAN emulation", describes the method and its limits.
//
//	client ns                          switch ns              server ns
//	app ─▶ 127.0.0.1:P (Proxy: +RTT) ─▶ eth0 ═tbf═ veth ─ br0 ─ veth ═tbf═ eth0 ─▶ server
//
// Nothing touches the machine's own network: every address and link lives in a namespace
// the network created. Everything carries the run's prefix (nww<pid>x<random>-) and goes
// away with Close; New also removes what runs that died without closing left behind.
package testnet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Link is a host's connection to the switch: bits per second into the host (Down) and out
// of it (Up); 0 is unlimited. Burst and Queue shape the token buckets; zero picks
// defaults (see tbf).
type Link struct {
	Down, Up int64
	Burst    int64         // bucket size in bytes
	Queue    time.Duration // longest a packet waits in the bucket's queue before it is dropped
}

// Symmetric is a link of the same rate both ways.
func Symmetric(bitsPerSecond int64) Link { return Link{Down: bitsPerSecond, Up: bitsPerSecond} }

// Net is a switch and the hosts on it.
type Net struct {
	Prefix string // every namespace's name starts with it

	mu     sync.Mutex
	sw     string
	hosts  []*Host
	closed bool
}

// Host is one namespace on the switch.
type Host struct {
	Name string     // the namespace, /run/netns/Name
	Addr netip.Addr // its address on the switch's /16
	Link Link
	port string // its veth end on the switch
	net  *Net
}

const (
	namePrefix = "nww"
	netnsDir   = "/run/netns"
	maxHosts   = 60000
)

// Available says why this machine cannot emulate links, or nil: it needs root, ip and tc,
// nsenter and network namespaces.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, veth, tc)")
	}
	for _, tool := range []string{"ip", "tc", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s (iproute2, util-linux)", tool)
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return errors.New("the kernel has no network namespaces")
	}
	return nil
}

// New creates the switch. Close removes it and every host.
func New() (*Net, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	removeStale()
	var r [3]byte
	_, _ = rand.Read(r[:])
	n := &Net{Prefix: fmt.Sprintf("%s%dx%s-", namePrefix, os.Getpid(), hex.EncodeToString(r[:]))}
	n.sw = n.Prefix + "switch"
	if err := run("ip", "netns", "add", n.sw); err != nil {
		return nil, err
	}
	for _, c := range [][]string{
		{"ip", "-n", n.sw, "link", "set", "lo", "up"},
		{"ip", "-n", n.sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"ip", "-n", n.sw, "link", "set", "br0", "up"},
	} {
		if err := run(c...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// AddHost creates a host namespace named Prefix+name, on the switch through link. Hosts get
// the addresses 10.77.0.1, 10.77.0.2, ... in the order they are added.
func (n *Net) AddHost(name string, link Link) (*Host, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("testnet: network closed")
	}
	i := len(n.hosts) + 1
	if i > maxHosts {
		n.mu.Unlock()
		return nil, fmt.Errorf("testnet: more than %d hosts", maxHosts)
	}
	h := &Host{Name: n.Prefix + name, Link: link, port: "p" + strconv.Itoa(i), net: n}
	h.Addr = netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)})
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	cmds := [][]string{
		{"ip", "netns", "add", h.Name},
		{"ip", "link", "add", "eth0", "netns", h.Name, "type", "veth", "peer", "name", h.port, "netns", n.sw},
		{"ip", "-n", n.sw, "link", "set", h.port, "master", "br0", "up"},
		{"ip", "-n", h.Name, "addr", "add", h.Addr.String() + "/16", "dev", "eth0"},
		{"ip", "-n", h.Name, "link", "set", "eth0", "up"},
		{"ip", "-n", h.Name, "link", "set", "lo", "up"},
	}
	if link.Up > 0 {
		cmds = append(cmds, append([]string{"tc", "-n", h.Name, "qdisc", "replace", "dev", "eth0", "root"}, link.tbf(link.Up)...))
	}
	if link.Down > 0 {
		cmds = append(cmds, append([]string{"tc", "-n", n.sw, "qdisc", "replace", "dev", h.port, "root"}, link.tbf(link.Down)...))
	}
	for _, c := range cmds {
		if err := run(c...); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// tbf is the token bucket for a rate. By default the bucket holds 4 ms at that rate (at
// least 64 KiB, so a full-size GSO packet fits) and packets wait at most 20 ms in the queue
// before they are dropped (a router with a modest buffer; TCP then backs off).
func (l Link) tbf(bitsPerSecond int64) []string {
	burst := l.Burst
	if burst <= 0 {
		burst = max(bitsPerSecond/8/250, 64<<10)
	}
	queue := l.Queue
	if queue <= 0 {
		queue = 20 * time.Millisecond
	}
	return []string{"tbf", "rate", strconv.FormatInt(bitsPerSecond, 10) + "bit",
		"burst", strconv.FormatInt(burst, 10), "latency", strconv.FormatInt(queue.Microseconds(), 10) + "us"}
}

// Hosts returns the hosts so far.
func (n *Net) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Host(nil), n.hosts...)
}

// Close deletes every namespace of the network (and with them the veths, bridge and
// qdiscs). Processes still running in a host's namespace keep it alive, nameless, until
// they exit: stop them first.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	hosts := n.hosts
	n.mu.Unlock()
	var errs []error
	for _, h := range hosts {
		if err := deleteNetns(h.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteNetns(n.sw); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func deleteNetns(name string) error {
	if _, err := os.Stat(netnsDir + "/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return run("ip", "netns", "del", name)
}

// removeStale deletes namespaces left by runs whose process is gone (killed before Close).
func removeStale() {
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, namePrefix) {
			continue
		}
		pidPart, _, ok := strings.Cut(strings.TrimPrefix(name, namePrefix), "x")
		pid, err := strconv.Atoi(pidPart)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = deleteNetns(name)
		}
	}
}

// URL returns http://ADDR:port, the host's HTTP server at port as the other hosts reach it.
func (h *Host) URL(port int) string {
	return "http://" + netip.AddrPortFrom(h.Addr, uint16(port)).String()
}

// QdiscBytes returns the bytes each direction's token bucket has passed: towards the host
// (down) and from it (up); 0 for an unlimited direction.
func (h *Host) QdiscBytes() (down, up int64, err error) {
	if h.Link.Down > 0 {
		if down, err = qdiscBytes(h.net.sw, h.port); err != nil {
			return
		}
	}
	if h.Link.Up > 0 {
		up, err = qdiscBytes(h.Name, "eth0")
	}
	return
}

func qdiscBytes(ns, dev string) (int64, error) {
	out, err := output("tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", dev)
	if err != nil {
		return 0, err
	}
	var qs []struct {
		Kind  string `json:"kind"`
		Bytes int64  `json:"bytes"`
	}
	if err := json.Unmarshal(out, &qs); err != nil {
		return 0, fmt.Errorf("tc -s -j qdisc show dev %s: %w", dev, err)
	}
	for _, q := range qs {
		if q.Kind == "tbf" {
			return q.Bytes, nil
		}
	}
	return 0, fmt.Errorf("no tbf qdisc on %s in %s", dev, ns)
}

func run(args ...string) error {
	_, err := output(args...)
	return err
}

func output(args ...string) ([]byte, error) {
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
