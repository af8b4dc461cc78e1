package wan

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"os"
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
}

func itoa(n int) string { return strconv.Itoa(n) }
