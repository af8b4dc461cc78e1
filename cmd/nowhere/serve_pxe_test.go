package main

import (
	"bytes"
	"context"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/pxe"
	"github.com/nowhere-boot/nowhere/internal/testnet"
)

// TestServePXERefusals: what --pxe cannot work with stops serve with one line naming it.
func TestServePXERefusals(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("k"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", dir, "--secure-boot"}, "--secure-boot needs --pxe IFACE"},
		{[]string{"serve", dir, "--pxe-wait", "1s"}, "--pxe-wait needs --pxe IFACE"},
		{[]string{"serve", dir, "--arm64-kernel", kernel}, "--arm64-kernel needs --pxe IFACE"},
		{[]string{"serve", dir, "--pxe", "lo"}, "--pxe needs the boot menu"},
		{[]string{"serve", dir, "--pxe", "nosuch0", "--kernel", kernel, "--initrd", kernel}, "--pxe nosuch0: no such network interface"},
	} {
		cmd := newRootCommand()
		cmd.SetArgs(c.args)
		cmd.SetOut(new(strings.Builder))
		cmd.SetErr(new(strings.Builder))
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("nowhere %s: %v, want one line saying %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// TestServePXEOnLAN runs serve --pxe in a namespace: an interface without an address and
// an unreachable --listen are refused; with no DHCP server on the LAN it warns and
// serves; with another PXE server there it refuses to start.
func TestServePXEOnLAN(t *testing.T) {
	if err := testnet.Available(); err != nil {
		testutil.Missing(t, err)
	}
	if err := pxe.CheckLoaders(pxe.Loaders(false)); err != nil {
		testutil.Missing(t, err)
	}
	bin := fsPackBinary(t)
	n, err := testnet.New()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srv, err := n.AddHost("srv", testnet.Link{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := n.AddHost("other", testnet.Link{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", srv.Name, "link", "add", "bare0", "type", "veth", "peer", "name", "bare1").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("k"), 0o644)
	// A store (images/), so serve's "holds no images/" warning stays out of the one-line checks.
	os.Mkdir(filepath.Join(dir, "images"), 0o755)
	serve := func(wait time.Duration, args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		cmd := srv.Command(ctx, bin, append([]string{"serve", dir, "--kernel", kernel, "--initrd", kernel, "--pxe-wait", "1s"}, args...)...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		return o.String(), e.String(), err
	}
	oneLine := func(stderr, want string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if !strings.Contains(stderr, want) || len(lines) != 1 {
			t.Errorf("stderr %q, want one line with %q", stderr, want)
		}
	}
	_, e, err := serve(10*time.Second, "--pxe", "bare0", "--listen", "0.0.0.0:0")
	if err == nil {
		t.Error("serve --pxe on an interface without an address started")
	}
	oneLine(e, "--pxe bare0: the interface has no IPv4 address")
	_, e, err = serve(10*time.Second, "--pxe", "eth0", "--listen", "127.0.0.1:0")
	if err == nil {
		t.Error("serve --pxe with --listen 127.0.0.1 started")
	}
	oneLine(e, "--listen 127.0.0.1:0 is not reachable from that LAN: listen on "+srv.Addr.String()+" or 0.0.0.0")

	// No DHCP server on the LAN: a warning, and serving goes on.
	o, e, _ := serve(5*time.Second, "--pxe", "eth0", "--listen", srv.Addr.String()+":0")
	if !strings.Contains(e, "warning: --pxe eth0: no DHCP server answered on this LAN within 1s, and --pxe does not hand out addresses") ||
		!strings.Contains(o, "pxe: proxyDHCP on eth0") {
		t.Errorf("no DHCP server: stdout %q stderr %q, want a warning and serving", o, e)
	}

	// Another PXE server on the LAN: refused.
	var r *pxe.Responder
	if err := other.Do(func() (err error) {
		r, err = pxe.Listen("eth0", pxe.Config{Addr: other.Addr, HTTPBase: "http://x", MenuURL: "http://x/boot.ipxe"}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go r.Serve()
	defer r.Close()
	_, e, err = serve(10*time.Second, "--pxe", "eth0", "--listen", "0.0.0.0:0")
	if err == nil {
		t.Error("serve --pxe started next to another PXE server")
	}
	oneLine(e, "--pxe eth0: another PXE server, "+other.Addr.String()+", already answers PXE clients on this LAN (boot file \"undionly.kpxe\")")
}
