package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// TestPathLimitsBandwidthAndAddsRTT builds the 100 Mbit/s, 40 ms path, runs a server in
// the server namespace and talks to it through the proxy in the client namespace. It
// checks that data goes through intact, that the token bucket carried it (its own byte
// counter), that the proxy held every byte at least half the RTT (its own counter), and,
// with generous lower bounds only, that a round trip costs the RTT and that 4 MiB take at
// least as long as the rate allows. Then everything is gone.
func TestPathLimitsBandwidthAndAddsRTT(t *testing.T) {
	testutil.NetNamespaces(t)
	if err := Available(); err != nil {
		t.Fatal(err) // as root with namespaces, only a missing tool is left: make test installs them
	}
	p, err := NewPath(Home)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	ln, err := p.Server.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server answers a 4-byte length with that many bytes of the payload, per request.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var n uint32
				for binary.Read(c, binary.BigEndian, &n) == nil {
					if _, err := c.Write(payload[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	proxy, err := ProxyTo(p.Client, net.JoinHostPort(p.Server.Addr.String(), itoa(port)), p.RTT)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	// The proxy listens on the client namespace's loopback: the client dials from there.
	dialed := time.Now()
	conn, err := p.Client.Dial(context.Background(), "tcp", proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	ask := func(n int) ([]byte, time.Duration) {
		t.Helper()
		start := time.Now()
		if err := binary.Write(conn, binary.BigEndian, uint32(n)); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(conn, b); err != nil {
			t.Fatal(err)
		}
		return b, time.Since(start)
	}
	// A new connection and its first request: handshake + request = 2 RTT.
	ask(1)
	first := time.Since(dialed)
	// Then round trips on the open connection.
	var rtt time.Duration
	for range 3 {
		_, d := ask(1)
		rtt = max(rtt, d)
	}
	big, bulk := ask(len(payload))
	if !bytes.Equal(big, payload) {
		t.Fatal("the 4 MiB came back different")
	}
	conn.Close()
	proxy.Close() // waits for the relay to finish: the counters are final
	st := proxy.Stats()
	down, up, err := p.Client.QdiscBytes()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("connect and first request %v, round trip %v, 4 MiB in %v (%.1f Mbit/s); proxy %+v; tbf down %d up %d bytes",
		first, rtt, bulk, float64(len(payload))*8/bulk.Seconds()/1e6, st, down, up)
	if st.Conns != 1 || st.BytesDown != int64(len(payload))+4 || st.BytesUp != 5*4 {
		t.Errorf("proxy relayed %+v, want 1 connection, %d bytes down, 20 up", st, len(payload)+4)
	}
	if st.MinHold < p.RTT/2 {
		t.Errorf("the proxy held a segment %v, less than half the RTT (%v)", st.MinHold, p.RTT/2)
	}
	if down < int64(len(payload)) || up == 0 {
		t.Errorf("the token buckets passed %d bytes down and %d up: the traffic did not cross the limited link", down, up)
	}
	if first < 2*p.RTT || rtt < p.RTT {
		t.Errorf("connect and first request %v (want >= 2 RTT = %v), round trip %v (want >= %v)", first, 2*p.RTT, rtt, p.RTT)
	}
	// 4 MiB at 100 Mbit/s take 0.34 s; allow for the bucket's burst and measurement.
	if min := time.Duration(float64(len(payload)-256<<10) * 8 / float64(p.Rate) * float64(time.Second)); bulk < min {
		t.Errorf("4 MiB in %v: faster than the %d bit/s link allows (%v)", bulk, p.Rate, min)
	}
	ln.Close()
	names := []string{p.Client.Name, p.Server.Name, p.Net.Prefix + "switch"}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := os.Stat(netnsDir + "/" + n); err == nil {
			t.Errorf("namespace %s still there after Close", n)
		}
	}
}

func TestParseScenario(t *testing.T) {
	for in, want := range map[string]Scenario{
		"100mbit-40ms": {Name: "100mbit-40ms", Rate: 100_000_000, RTT: 40 * time.Millisecond},
		"1gbit-2ms":    {Name: "1gbit-2ms", Rate: 1_000_000_000, RTT: 2 * time.Millisecond},
		"local":        Local,
	} {
		if got, err := ParseScenario(in); err != nil || got != want {
			t.Errorf("%s: %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "100mbit", "fast-40ms", "100mbit-soon", "0mbit-1ms", "100mbit--1ms"} {
		if _, err := ParseScenario(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if r, err := ParseRate("40mbit"); err != nil || r != 40_000_000 {
		t.Errorf("40mbit: %d, %v", r, err)
	}
	for _, bad := range []string{"", "40", "40MB", "-1mbit", "1.5gbit"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("rate %q accepted", bad)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestTwoHostsOnASwitch: two hosts talk TCP across the switch, one of them behind a
// token bucket of the given burst and queue; a command run with Command sees the host's
// own interface and address; Close removes every namespace, and no link ever appears in
// the machine's own namespace.
func TestTwoHostsOnASwitch(t *testing.T) {
	testutil.NetNamespaces(t)
	if err := Available(); err != nil {
		t.Fatal(err) // as root, only a missing tool is left: make test installs them
	}
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	a, err := n.AddHost("a", Link{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddHost("b", Link{Up: 10_000_000, Burst: 32 << 10, Queue: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := a.Listen("tcp", net.JoinHostPort(a.Addr.String(), "7000"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c) // echo until b half-closes
			c.Close()
		}
	}()
	conn, err := b.Dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	msg := []byte("hello from " + b.Addr.String())
	conn.Write(msg)
	conn.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(conn)
	conn.Close()
	if !bytes.Equal(got, msg) {
		t.Errorf("echo: got %q, want %q", got, msg)
	}
	if _, up, err := b.QdiscBytes(); err != nil || up < int64(len(msg)) {
		t.Errorf("b's token bucket passed %d bytes (%v): the traffic did not cross it", up, err)
	}
	qdisc, err := exec.Command("tc", "-n", b.Name, "qdisc", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !bytes.Contains(qdisc, []byte("rate 10Mbit burst 32Kb lat 100ms")) {
		t.Errorf("b's qdisc (%v): %s, want rate 10Mbit burst 32Kb lat 100ms", err, qdisc)
	}
	out, err := b.Command(context.Background(), "ip", "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(" "+b.Addr.String()+"/16 ")) {
		t.Errorf("ip addr inside b (%v): %s, want %s", err, out, b.Addr)
	}
	if want := "http://" + a.Addr.String() + ":8080"; a.URL(8080) != want {
		t.Errorf("URL: %s, want %s", a.URL(8080), want)
	}
	names := []string{a.Name, b.Name, n.Prefix + "switch"}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, err := os.Stat(netnsDir + "/" + name); err == nil {
			t.Errorf("namespace %s left behind", name)
		}
	}
	if links, _ := exec.Command("ip", "-o", "link").CombinedOutput(); bytes.Contains(links, []byte(n.Prefix)) {
		t.Errorf("links left behind:\n%s", links)
	}
}

// TestTapOnTheSwitch: a tap is a port of the switch's bridge, visible to a process run in
// NetNS (where qemu opens it), and goes away with the network.
func TestTapOnTheSwitch(t *testing.T) {
	testutil.NetNamespaces(t)
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	tap, err := n.AddTap("tap0")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsenter", "--net="+tap.NetNS, "--", "ip", "-o", "link", "show", "dev", "tap0").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("master br0")) {
		t.Errorf("tap0 in %s (%v): %s, want a port of br0", tap.NetNS, err, out)
	}
	if _, err := n.AddTap("a-name-too-long-for-linux"); err == nil {
		t.Errorf("a 25-character interface name was accepted")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tap.NetNS); err == nil {
		t.Errorf("the switch namespace %s, with the tap, was left behind", tap.NetNS)
	}
}
