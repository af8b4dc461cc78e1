package pxe

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/pin/tftp/v3"

	"github.com/nowhere-boot/nowhere/internal/testnet"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

var testCfg = Config{Addr: netip.MustParseAddr("10.77.0.1"), HTTPBase: "http://10.77.0.1:80",
	MenuURL: "http://10.77.0.1:80/boot.ipxe"}

var mac = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}

// discover is a DHCPDISCOVER as firmware sends it.
func discover(t testing.TB, vendor string, arch int, userClass string) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{}
	if vendor != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendor)))
	}
	if arch >= 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(arch))))
	}
	if userClass != "" {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte(userClass)))
	}
	d, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// allowed are the only options an answer may carry: nothing about addresses or leases.
var allowed = map[uint8]bool{
	dhcpv4.OptionDHCPMessageType.Code(): true, dhcpv4.OptionServerIdentifier.Code(): true, dhcpv4.OptionClassIdentifier.Code(): true,
	dhcpv4.OptionBootfileName.Code(): true, dhcpv4.OptionVendorSpecificInformation.Code(): true, dhcpv4.OptionClientMachineIdentifier.Code(): true,
	dhcpv4.OptionClientIdentifier.Code(): true, dhcpv4.OptionRelayAgentInformation.Code(): true,
}

func checkAnswer(t *testing.T, r *dhcpv4.DHCPv4, typ dhcpv4.MessageType, file, vendor string) {
	t.Helper()
	if r == nil {
		t.Fatalf("no answer, want %s %s", typ, file)
	}
	if r.MessageType() != typ || r.BootFileName != file || r.BootFileNameOption() != file {
		t.Errorf("answer %s file %q option 67 %q, want %s %q", r.MessageType(), r.BootFileName, r.BootFileNameOption(), typ, file)
	}
	if !r.YourIPAddr.IsUnspecified() {
		t.Errorf("yiaddr %v: a proxy never offers an address", r.YourIPAddr)
	}
	if !r.ServerIPAddr.Equal(net.IP(testCfg.Addr.AsSlice())) || !r.ServerIdentifier().Equal(net.IP(testCfg.Addr.AsSlice())) {
		t.Errorf("siaddr %v server id %v, want %v", r.ServerIPAddr, r.ServerIdentifier(), testCfg.Addr)
	}
	if r.ClassIdentifier() != vendor {
		t.Errorf("option 60 %q, want %q", r.ClassIdentifier(), vendor)
	}
	for code := range r.Options {
		if !allowed[code] {
			t.Errorf("answer carries option %d: only boot options are allowed", code)
		}
	}
}

func TestReply(t *testing.T) {
	sb := testCfg
	sb.SecureBoot = true
	arm := testCfg
	arm.Arm64, arm.Arm64UKI = true, true
	armPXE := testCfg
	armPXE.Arm64 = true
	for _, c := range []struct {
		name   string
		cfg    Config
		req    *dhcpv4.DHCPv4
		file   string // "": no answer
		vendor string
	}{
		{"BIOS PXE", testCfg, discover(t, "PXEClient:Arch:00000:UNDI:002001", 0, ""), "undionly.kpxe", "PXEClient"},
		{"BIOS PXE without option 93", testCfg, discover(t, "PXEClient", -1, ""), "undionly.kpxe", "PXEClient"},
		{"UEFI PXE", testCfg, discover(t, "PXEClient:Arch:00007:UNDI:003000", 7, ""), "ipxe.efi", "PXEClient"},
		{"UEFI PXE (EFI BC)", testCfg, discover(t, "PXEClient:Arch:00009:UNDI:003000", 9, ""), "ipxe.efi", "PXEClient"},
		{"UEFI PXE, Secure Boot", sb, discover(t, "PXEClient:Arch:00007:UNDI:003000", 7, ""), "shimx64.efi", "PXEClient"},
		{"BIOS PXE, Secure Boot", sb, discover(t, "PXEClient:Arch:00000:UNDI:002001", 0, ""), "undionly.kpxe", "PXEClient"},
		{"UEFI HTTP Boot", testCfg, discover(t, "HTTPClient:Arch:00016:UNDI:003001", 16, ""), "http://10.77.0.1:80/boot/ipxe.efi", "HTTPClient"},
		{"UEFI HTTP Boot, Secure Boot", sb, discover(t, "HTTPClient:Arch:00016:UNDI:003001", 16, ""), "http://10.77.0.1:80/boot/ipxe.efi", "HTTPClient"},
		{"iPXE", testCfg, discover(t, "PXEClient:Arch:00000:UNDI:002001", 0, "iPXE"), "http://10.77.0.1:80/boot.ipxe", "PXEClient"},
		{"iPXE, RFC 3004 user class", testCfg, discover(t, "PXEClient:Arch:00007:UNDI:003001", 7, "\x04iPXE"), "http://10.77.0.1:80/boot.ipxe", "PXEClient"},
		{"UEFI iPXE, Secure Boot", sb, discover(t, "PXEClient:Arch:00007:UNDI:003001", 7, "iPXE"), "http://10.77.0.1:80/boot.ipxe", "PXEClient"},
		{"not PXE", testCfg, discover(t, "", -1, ""), "", ""},
		{"not PXE, some vendor", testCfg, discover(t, "MSFT 5.0", -1, ""), "", ""},
		{"PXE, arm64, not served", testCfg, discover(t, "PXEClient:Arch:00011:UNDI:003000", 11, ""), "", ""},
		{"HTTP Boot, arm64, not served", testCfg, discover(t, "HTTPClient:Arch:00019:UNDI:003001", 19, ""), "", ""},
		{"PXE, arm64", arm, discover(t, "PXEClient:Arch:00011:UNDI:003000", 11, ""), "shimaa64.efi", "PXEClient"},
		{"HTTP Boot, arm64", arm, discover(t, "HTTPClient:Arch:00019:UNDI:003001", 19, ""), "http://10.77.0.1:80/boot/nowhereaa64.efi", "HTTPClient"},
		{"HTTP Boot, arm64, no UKI", armPXE, discover(t, "HTTPClient:Arch:00019:UNDI:003001", 19, ""), "", ""},
		{"UEFI PXE, with arm64 served", arm, discover(t, "PXEClient:Arch:00007:UNDI:003000", 7, ""), "ipxe.efi", "PXEClient"},
		{"HTTP Boot, arm64 arch over PXE", arm, discover(t, "PXEClient:Arch:00019:UNDI:003000", 19, ""), "", ""},
		{"HTTP Boot, x64 PXE arch", testCfg, discover(t, "HTTPClient", 7, ""), "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _, _ := c.cfg.Reply(c.req, false)
			if c.file == "" {
				if r != nil {
					t.Fatalf("answered %s %q: want no answer", r.MessageType(), r.BootFileName)
				}
				return
			}
			checkAnswer(t, r, dhcpv4.MessageTypeOffer, c.file, c.vendor)
			// The same client asking the boot server port.
			req := *c.req
			req.Options = dhcpv4.Options{}
			for k, v := range c.req.Options {
				req.Options[k] = v
			}
			req.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
			req.ClientIPAddr = net.IPv4(10, 77, 1, 20)
			if r, _, _ := c.cfg.Reply(&req, false); r != nil {
				t.Errorf("answered a DHCPREQUEST on port 67: those are the LAN DHCP server's")
			}
			r, _, _ = c.cfg.Reply(&req, true)
			checkAnswer(t, r, dhcpv4.MessageTypeAck, c.file, c.vendor)
			if !r.ClientIPAddr.Equal(req.ClientIPAddr) {
				t.Errorf("ACK ciaddr %v, want %v", r.ClientIPAddr, req.ClientIPAddr)
			}
		})
	}
}

func TestReplyRefusesReplies(t *testing.T) {
	d := discover(t, "PXEClient", 0, "")
	d.OpCode = dhcpv4.OpcodeBootReply
	if r, _, _ := testCfg.Reply(d, false); r != nil {
		t.Fatal("answered a BOOTREPLY (another server's offer)")
	}
}

// FuzzReply: whatever arrives, parsing and answering never panic, and an answer never
// offers an address.
func FuzzReply(f *testing.F) {
	for _, d := range []*dhcpv4.DHCPv4{discover(f, "PXEClient:Arch:00000:UNDI:002001", 0, ""),
		discover(f, "HTTPClient:Arch:00016", 16, "iPXE"), discover(f, "", -1, "\x04iPXE\x03abc")} {
		f.Add(d.ToBytes(), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, port4011 bool) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		r, _, _ := testCfg.Reply(m, port4011)
		if r != nil {
			if !r.YourIPAddr.IsUnspecified() {
				t.Fatalf("offered %v", r.YourIPAddr)
			}
			_ = r.ToBytes()
		}
	})
}

// lan is a server host and a client host on one switch, in network namespaces.
func lan(t *testing.T) (*testnet.Net, *testnet.Host, *testnet.Host) {
	t.Helper()
	if err := testnet.Available(); err != nil {
		testutil.Missing(t, err)
	}
	n, err := testnet.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	srv, err := n.AddHost("srv", testnet.Link{})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := n.AddHost("cli", testnet.Link{})
	if err != nil {
		t.Fatal(err)
	}
	return n, srv, cli
}

// TestResponderOnLAN answers real broadcast DHCPDISCOVERs from another namespace, and a
// DHCPREQUEST to port 4011; a plain DHCPDISCOVER gets nothing.
func TestResponderOnLAN(t *testing.T) {
	_, srv, cli := lan(t)
	cfg := Config{Addr: srv.Addr, HTTPBase: "http://" + srv.Addr.String() + ":80", MenuURL: "http://" + srv.Addr.String() + ":80/boot.ipxe"}
	var logged logLines
	var r *Responder
	if err := srv.Do(func() (err error) {
		r, err = Listen("eth0", cfg, logged.logf)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve() }()
	defer func() {
		r.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var c *nclient4.Client
	if err := cli.Do(func() (err error) {
		c, err = nclient4.New("eth0", nclient4.WithTimeout(time.Second), nclient4.WithRetry(2))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(vendor string, arch int, uc string) *dhcpv4.DHCPv4 {
		d := discover(t, vendor, arch, uc)
		d.ClientHWAddr = c.InterfaceAddr()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		m, err := c.SendAndRead(ctx, nclient4.DefaultServers, d, nclient4.IsMessageType(dhcpv4.MessageTypeOffer))
		if err != nil {
			return nil
		}
		return m
	}
	cfgIP := net.IP(srv.Addr.AsSlice())
	for _, k := range []struct {
		vendor   string
		arch     int
		uc, file string
	}{
		{"PXEClient:Arch:00000:UNDI:002001", 0, "", "undionly.kpxe"},
		{"PXEClient:Arch:00007:UNDI:003000", 7, "", "ipxe.efi"},
		{"HTTPClient:Arch:00016:UNDI:003001", 16, "", cfg.HTTPBase + "/boot/ipxe.efi"},
		{"PXEClient:Arch:00000:UNDI:002001", 0, "iPXE", cfg.MenuURL},
	} {
		m := ask(k.vendor, k.arch, k.uc)
		if m == nil {
			t.Errorf("%s arch %d user class %q: no offer", k.vendor, k.arch, k.uc)
			continue
		}
		if m.BootFileName != k.file || !m.YourIPAddr.IsUnspecified() || !m.ServerIdentifier().Equal(cfgIP) {
			t.Errorf("%s arch %d: offer file %q yiaddr %v server %v, want %q, 0.0.0.0, %v", k.vendor, k.arch, m.BootFileName, m.YourIPAddr, m.ServerIdentifier(), k.file, cfgIP)
		}
	}
	if m := ask("", -1, ""); m != nil {
		t.Errorf("a plain DHCPDISCOVER got an offer: %s", m.Summary())
	}

	// Port 4011: the client has its address; a unicast DHCPREQUEST, answered where it came from.
	var conn *net.UDPConn
	if err := cli.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP(cli.Addr.AsSlice())})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := discover(t, "PXEClient:Arch:00007:UNDI:003016", 7, "")
	req.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	req.ClientIPAddr = net.IP(cli.Addr.AsSlice())
	if _, err := conn.WriteToUDP(req.ToBytes(), &net.UDPAddr{IP: cfgIP, Port: PXEPort}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no answer on port 4011: %v", err)
	}
	ack, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "ipxe.efi" || !ack.YourIPAddr.IsUnspecified() {
		t.Errorf("port 4011 answer: %s", ack.Summary())
	}
	if n := logged.count(); n < 5 {
		t.Errorf("logged %d answers, want 5", n)
	}
}

// TestProbe: the probe sees a PXE server (this package's responder) as a conflict, and
// says no DHCP server answered.
func TestProbe(t *testing.T) {
	_, srv, cli := lan(t)
	res := probe(t, cli)
	if len(res.PXE) != 0 || len(res.DHCP) != 0 {
		t.Fatalf("empty LAN: probe saw %+v", res)
	}
	var r *Responder
	if err := srv.Do(func() (err error) {
		r, err = Listen("eth0", Config{Addr: srv.Addr, HTTPBase: "http://x", MenuURL: "http://x/boot.ipxe"}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go r.Serve()
	defer r.Close()
	res = probe(t, cli)
	if len(res.PXE) != 1 || !res.PXE[0].Server.Equal(net.IP(srv.Addr.AsSlice())) || res.PXE[0].BootFile != "undionly.kpxe" {
		t.Fatalf("probe saw %+v, want the other PXE server", res)
	}
}

func probe(t *testing.T, h *testnet.Host) *ProbeResult {
	t.Helper()
	var res *ProbeResult
	if err := h.Do(func() (err error) {
		res, err = Probe(context.Background(), "eth0", 2*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestTFTP fetches every Debian loader installed here byte for byte, the generated GRUB
// menu, and is refused other names, path tricks and writes.
func TestTFTP(t *testing.T) {
	var ls []Loader
	for _, l := range Loaders(true) {
		if _, err := os.Stat(l.Path); err == nil {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 {
		testutil.Missing(t, "no Debian loader installed (ipxe, shim-signed, grub-efi-amd64-signed)")
	}
	files := &Files{Loaders: ls, Generated: map[string]func(context.Context) ([]byte, error){
		GrubCfg: func(context.Context) ([]byte, error) { return []byte("set timeout=1\n"), nil },
	}}
	var logged logLines
	srv, err := ListenTFTP("127.0.0.1:0", files, logged.logf)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	c, err := tftp.NewClient(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(2 * time.Second)
	c.SetRetries(2)
	c.SetBlockSize(1468)
	get := func(name string) ([]byte, error) {
		wt, err := c.Receive(name, "octet")
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		_, err = wt.WriteTo(&b)
		return b.Bytes(), err
	}
	for _, l := range ls {
		want, err := os.ReadFile(l.Path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := get(l.Name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, err %v; want the %d bytes of %s", l.Name, len(got), err, len(want), l.Path)
		}
	}
	if got, err := get("/" + GrubCfg); err != nil || string(got) != "set timeout=1\n" {
		t.Errorf("%s: %q, %v", GrubCfg, got, err)
	}
	for _, name := range []string{"pxelinux.0", "../../etc/passwd", "/etc/passwd", "grub/../ipxe.efi", "./ipxe.efi",
		ls[0].Path, "grub", "grub/", "IPXE.EFI", "boot/" + ls[0].Name} {
		if b, err := get(name); err == nil {
			t.Errorf("read %q: got %d bytes, want a refusal", name, len(b))
		}
	}
	rf, err := c.Send("upload.bin", "octet")
	if err == nil {
		_, err = rf.ReadFrom(strings.NewReader("data"))
	}
	if err == nil {
		t.Error("a write succeeded")
	}
	if logged.count() == 0 {
		t.Error("nothing logged")
	}
}

// TestHTTPLoaders: the HTTP handler serves the loaders (also at shim's /boot//NAME) and
// the GRUB menu, GET and HEAD only, and passes everything else on.
func TestHTTPLoaders(t *testing.T) {
	ls := []Loader{}
	for _, l := range Loaders(true) {
		if _, err := os.Stat(l.Path); err == nil {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 {
		testutil.Missing(t, "no Debian loader installed")
	}
	files := &Files{Loaders: ls, Generated: map[string]func(context.Context) ([]byte, error){
		GrubCfg: func(context.Context) ([]byte, error) { return []byte("menu"), nil },
	}}
	h := files.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "next", http.StatusTeapot) }), nil)
	get := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w
	}
	for _, l := range ls {
		want, _ := os.ReadFile(l.Path)
		for _, p := range []string{"/boot/" + l.Name, "/boot//" + l.Name} {
			w := get("GET", p)
			if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), want) {
				t.Errorf("GET %s: %d, %d bytes; want the %d bytes of %s", p, w.Code, w.Body.Len(), len(want), l.Path)
			}
			if ct := w.Header().Get("Content-Type"); strings.HasSuffix(l.Name, ".efi") && ct != "application/efi" {
				t.Errorf("GET %s: Content-Type %q", p, ct)
			}
		}
		if w := get("PUT", "/boot/"+l.Name); w.Code != http.StatusMethodNotAllowed {
			t.Errorf("PUT /boot/%s: %d", l.Name, w.Code)
		}
	}
	if w := get("GET", "/"+GrubCfg); w.Code != 200 || w.Body.String() != "menu" {
		t.Errorf("GET /%s: %d %q", GrubCfg, w.Code, w.Body.String())
	}
	for _, p := range []string{"/boot/../boot/ipxe.efi", "/boot/ipxe.efi/", "/ipxe.efi", "/boot/pxelinux.0", "/grub/x86_64-efi/grub.cfg"} {
		if w := get("GET", p); w.Code != http.StatusTeapot {
			t.Errorf("GET %s: %d, want it passed on", p, w.Code)
		}
	}
}

// TestGrubDispatch: the grub.cfg both architectures' GRUBs may read is one GRUB's own
// parser accepts, and it sends each to its architecture's menu.
func TestGrubDispatch(t *testing.T) {
	check, err := exec.LookPath("grub-script-check")
	if err != nil {
		t.Fatalf("grub-script-check (package grub-common) is needed: %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "grub.cfg")
	os.WriteFile(cfg, GrubDispatch(), 0o644)
	if out, err := exec.Command(check, cfg).CombinedOutput(); err != nil {
		t.Errorf("grub-script-check: %v\n%s", err, out)
	}
	s := string(GrubDispatch())
	for _, want := range []string{`"$grub_cpu" = "arm64"`, "$prefix/arm64-efi/grub.cfg", "$prefix/x86_64-efi/grub.cfg"} {
		if !strings.Contains(s, want) {
			t.Errorf("dispatch lacks %q:\n%s", want, s)
		}
	}
	if GrubArm64Cfg != "grub/arm64-efi/grub.cfg" || GrubArchCfg != "grub/x86_64-efi/grub.cfg" {
		t.Errorf("the dispatch names menus the server does not serve")
	}
}

// logLines collects log lines from the servers' goroutines (the log function is called
// from several at once).
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}
