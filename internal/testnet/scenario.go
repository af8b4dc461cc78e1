package testnet

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Scenario is a client's link to a server: its bandwidth (both ways) and the round-trip
// time the path adds.
type Scenario struct {
	Name string
	Rate int64         // bits per second; 0: unlimited
	RTT  time.Duration // added round-trip time; 0: none
}

// The scenarios of the boot benchmark.
var (
	// Home is a home line to a distant mirror: 100 Mbit/s, 40 ms.
	Home = Scenario{Name: "100mbit-40ms", Rate: 100_000_000, RTT: 40 * time.Millisecond}
	// LAN is a mirror on the local network: 1 Gbit/s, 2 ms.
	LAN = Scenario{Name: "1gbit-2ms", Rate: 1_000_000_000, RTT: 2 * time.Millisecond}
	// Local is the same namespaces and proxy with neither limit: the floor of the method.
	Local = Scenario{Name: "local"}
)

// ParseScenario reads "local" or RATE-RTT such as "100mbit-40ms", "1gbit-2ms", "10mbit-150ms".
func ParseScenario(s string) (Scenario, error) {
	if s == "local" {
		return Local, nil
	}
	bad := fmt.Errorf("scenario %q: want local or RATE-RTT such as 100mbit-40ms", s)
	rate, rtt, ok := strings.Cut(s, "-")
	if !ok {
		return Scenario{}, bad
	}
	bits, err := ParseRate(rate)
	if err != nil {
		return Scenario{}, bad
	}
	d, err := time.ParseDuration(rtt)
	if err != nil || d < 0 || d > 10*time.Second {
		return Scenario{}, bad
	}
	return Scenario{Name: s, Rate: bits, RTT: d}, nil
}

// ParseRate reads a rate in tc's notation, a whole number of kbit, mbit or gbit such as
// "40mbit", and returns bits per second.
func ParseRate(s string) (int64, error) {
	bad := fmt.Errorf("rate %q: want a number of kbit, mbit or gbit such as 100mbit", s)
	var mult int64
	num := s
	switch {
	case strings.HasSuffix(s, "gbit"):
		mult, num = 1_000_000_000, strings.TrimSuffix(s, "gbit")
	case strings.HasSuffix(s, "mbit"):
		mult, num = 1_000_000, strings.TrimSuffix(s, "mbit")
	case strings.HasSuffix(s, "kbit"):
		mult, num = 1_000, strings.TrimSuffix(s, "kbit")
	default:
		return 0, bad
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > 100_000 {
		return 0, bad
	}
	return n * mult, nil
}

// Path is a client and a server on a switch, the client's link limited by the scenario
// (the server's is not: the client's line is the bottleneck). Put the round-trip time on
// it with ProxyTo(p.Client, server address, p.RTT).
type Path struct {
	Scenario
	Net            *Net
	Client, Server *Host
}

// NewPath builds the path. Close removes it.
func NewPath(s Scenario) (*Path, error) {
	n, err := New()
	if err != nil {
		return nil, err
	}
	p := &Path{Scenario: s, Net: n}
	if p.Server, err = n.AddHost("server", Link{}); err == nil {
		p.Client, err = n.AddHost("client", Symmetric(s.Rate))
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	return p, nil
}

// Close removes the namespaces.
func (p *Path) Close() error { return p.Net.Close() }
