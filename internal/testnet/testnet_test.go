package testnet

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// Two hosts on a bridge talk TCP; Close removes every namespace and link.
func TestTwoHostsOnABridge(t *testing.T) {
	testutil.NetNamespaces(t)
	if why := Available(); why != "" {
		t.Fatal(why) // as root, only a missing tool is left: make test installs them
	}
	n, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a, err := n.AddHost("a", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddHost("b", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Limit("10mbit", 32<<10); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := a.Do(func() (err error) { ln, err = net.Listen("tcp", a.IP+":7000"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hello from " + a.IP))
			c.Close()
		}
	}()
	var conn net.Conn
	if err := b.Do(func() (err error) { conn, err = net.Dial("tcp", a.IP+":7000"); return }); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(conn)
	conn.Close()
	if string(got) != "hello from "+a.IP {
		t.Errorf("got %q", got)
	}
	names := []string{a.Name, b.Name, n.sw}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, err := os.Stat("/run/netns/" + name); err == nil {
			t.Errorf("namespace %s left behind", name)
		}
	}
	out, _ := exec_("ip", "link")
	if strings.Contains(out, n.prefix) {
		t.Errorf("links left behind:\n%s", out)
	}
}
