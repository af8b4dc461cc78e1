package boot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/pin/tftp/v3"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/pxe"
	"github.com/nowhere-boot/nowhere/internal/testnet"
)

// pxeStore is the store and initramfs every LAN boot shares: one busybox image, bb, and
// an initramfs with the publisher's key baked in (the menus carry no key).
var pxeStore struct {
	once        sync.Once
	dir, initrd string
	kernel      string // Debian's signed bzImage (iPXE and GRUB load bzImages)
	err         error
	tmp         string
	arm64       sync.Once // bb published for arm64 too (pxeArm64)
	arm64Err    error
}

func pxeSetup(t *testing.T) {
	t.Helper()
	needEnv(t)
	if err := testnet.Available(); err != nil {
		t.Fatal(err) // make test runs as root, with iproute2: nothing is missing there
	}
	for _, tool := range []string{"dnsmasq", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	if err := pxe.CheckLoaders(pxe.Loaders(true)); err != nil {
		t.Fatal(err) // scripts/install-deps.sh installs the loaders
	}
	pxeStore.once.Do(func() {
		// Built under the setup directory, not a test's: the subtests share it.
		pxeStore.tmp = filepath.Join(setupDir, "pxe")
		os.MkdirAll(pxeStore.tmp, 0o755)
		root := busyboxRoot(t)
		img := makeFS(t, root, "squashfs")
		pxeStore.dir = filepath.Join(pxeStore.tmp, "store")
		run(t, env.bin, "pack", img, "--store", pxeStore.dir, "--name", "bb", "--arch", "amd64", "--progress", "never", "--sign-key", env.secret)
		pxeStore.initrd = filepath.Join(pxeStore.tmp, "initrd.img")
		run(t, env.bin, "initramfs", "-o", pxeStore.initrd, "--modules", env.modules, "--key", env.public)
		pxeStore.kernel = filepath.Join(filepath.Dir(env.kernel), "vmlinuz")
	})
	if pxeStore.initrd == "" {
		t.Fatal("the shared store was not built (see the first test's failure)")
	}
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pxeLAN is a LAN in namespaces: the network's DHCP server (dnsmasq, addresses only),
// the nowhere server with --pxe, and a tap on the switch for a VM.
type pxeLAN struct {
	net       *testnet.Net
	dhcp, srv *testnet.Host
	tap       string
	swNS      string // the switch's namespace, for nsenter --net=
	serveLog  *syncBuffer
}

// newPXELAN starts the LAN and `nowhere serve --pxe eth0 serveArgs...`; everything stops
// when the test ends, failed or not. dhcpArgs are more dnsmasq options (nil: the network's
// DHCP server hands out addresses and nothing else).
func newPXELAN(t *testing.T, dhcpArgs []string, serveArgs ...string) *pxeLAN {
	t.Helper()
	n, err := testnet.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() }) // after the processes below (cleanups run last first)
	l := &pxeLAN{net: n, serveLog: &syncBuffer{}}
	if l.dhcp, err = n.AddHost("dhcp", testnet.Link{}); err != nil {
		t.Fatal(err)
	}
	if l.srv, err = n.AddHost("srv", testnet.Link{}); err != nil {
		t.Fatal(err)
	}
	tap, err := n.AddTap("tap0")
	if err != nil {
		t.Fatal(err)
	}
	l.tap, l.swNS = tap.Name, tap.NetNS
	tmp := t.TempDir()
	// The network's own DHCP server: addresses, no boot options.
	dnsmasqLog := &syncBuffer{}
	start(t, l.dhcp, dnsmasqLog, "dnsmasq", append([]string{"--no-daemon", "--port=0", "--interface=eth0", "--bind-interfaces",
		"--dhcp-range=10.77.1.10,10.77.1.200,255.255.0.0,10m", "--dhcp-leasefile=" + filepath.Join(tmp, "leases"),
		"--conf-file=/dev/null", "--log-dhcp"}, dhcpArgs...)...)
	args := append([]string{"serve", pxeStore.dir, "--listen", l.srv.Addr.String() + ":80", "--pxe", "eth0",
		"--kernel", pxeStore.kernel, "--initrd", pxeStore.initrd, "--boot-timeout", "1s",
		"--boot-append", "console=ttyS0 panic=-1 loglevel=4"}, serveArgs...)
	start(t, l.srv, l.serveLog, env.bin, args...)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(l.serveLog.String(), "pxe: proxyDHCP on eth0") {
		if time.Now().After(deadline) {
			t.Fatalf("nowhere serve --pxe did not start:\n%s\ndnsmasq:\n%s", l.serveLog, dnsmasqLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(l.serveLog.String(), "the LAN's DHCP server 10.77.0.1 hands out addresses") {
		t.Errorf("serve did not see dnsmasq:\n%s", l.serveLog)
	}
	return l
}

// start runs name in host h until the test ends.
func start(t *testing.T, h *testnet.Host, out io.Writer, name string, args ...string) {
	t.Helper()
	cmd := h.Command(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// pxeArm64 publishes the arm64 busybox image in the shared store under the same name, bb,
// once: one store for both architectures (latest.arm64 beside the x86 latest).
func pxeArm64(t *testing.T) {
	t.Helper()
	arm64Setup(t)
	pxeStore.arm64.Do(func() {
		pxeStore.arm64Err = cmdRun(env.bin, "pack", filepath.Join(arm64Store.tmp, "root.squashfs"), "--store", pxeStore.dir,
			"--name", "bb", "--arch", "arm64", "--progress", "never", "--sign-key", env.secret)
	})
	if pxeStore.arm64Err != nil {
		t.Fatal(pxeStore.arm64Err)
	}
}

// pxeVM is one firmware to power on.
type pxeVM struct {
	arch     string // "": amd64
	firmware vm.Firmware
	nicROM   bool // keep the virtio NIC's iPXE ROM
	fwCfg    []string
	expect   []string // console text to see, in order, before E2E-MARK-OK
}

// boot powers on a diskless VM on the LAN's tap until the guest's init prints its
// marker and powers off, and returns the console and the seconds from power-on to the
// marker.
func (l *pxeLAN) boot(t *testing.T, v pxeVM, timeout time.Duration) (string, float64) {
	t.Helper()
	logFile := consoleLog(t)
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	mark := regexp.MustCompile("E2E-MARK-OK")
	r, err := vm.Run(ctx, vm.Config{
		Arch: v.arch, Firmware: v.firmware, NICROM: v.nicROM, FwCfg: v.fwCfg, Tap: l.tap, NetNS: l.swNS,
		Memory: 1024, CPUs: 1, Accel: "auto", Console: logFile, Expect: []*regexp.Regexp{mark},
	})
	at, marked := r.Matches[mark.String()]
	if !marked {
		t.Fatalf("no marker (err=%v, after %.0f s); console:\n%s\nserver:\n%s", err, r.Elapsed.Seconds(), tail(r.Console, 80), tail(l.serveLog.String(), 40))
	}
	c := r.Console
	pos := 0
	for _, want := range v.expect {
		i := strings.Index(c[pos:], want)
		if i < 0 {
			t.Errorf("the console lacks %q (after what came before it):\n%s", want, tail(c, 60))
			continue
		}
		pos += i
	}
	return c, at.Seconds()
}

// served checks that the server's log has every line, and none of the lines in not.
func (l *pxeLAN) served(t *testing.T, want []string, not []string) {
	t.Helper()
	log := l.serveLog.String()
	for _, w := range want {
		if !strings.Contains(log, w) {
			t.Errorf("the server never logged %q:\n%s", w, tail(log, 60))
		}
	}
	for _, w := range not {
		if strings.Contains(log, w) {
			t.Errorf("the server logged %q:\n%s", w, tail(log, 60))
		}
	}
}

// pxeOff switches OVMF's PXE off (Debian 12's OVMF reads these from fw_cfg), so that
// UEFI HTTP Boot is its first network boot option instead of the fourth, after PXEv4
// and PXEv6 have each waited for a boot offer for about a minute under TCG.
var pxeOff = []string{"name=opt/org.tianocore/IPv4PXESupport,string=n", "name=opt/org.tianocore/IPv6PXESupport,string=n"}

// TestPXE boots diskless VMs on a LAN whose own DHCP server (dnsmasq) knows nothing of
// network boot: `nowhere serve --pxe` adds the boot file by proxyDHCP and serves the
// loaders by TFTP and HTTP. Each firmware path ends at the busybox image's init,
// streamed over HTTP by the initramfs.
func TestPXE(t *testing.T) {
	pxeSetup(t)
	t.Run("SeaBIOS", func(t *testing.T) {
		// The virtio NIC's ROM is iPXE: it asks with user class iPXE and gets the menu.
		l := newPXELAN(t, nil)
		_, s := l.boot(t, pxeVM{firmware: vm.SeaBIOS, nicROM: true, expect: []string{
			"iPXE", "http://10.77.0.2/boot.ipxe", "nowhere: booting image bb from http://10.77.0.2", "E2E-MARK-OK"}}, 8*time.Minute)
		t.Logf("SeaBIOS PXE -> iPXE ROM -> menu: power-on to marker %.1f s", s)
		l.served(t, []string{"PXE (BIOS, iPXE) DISCOVER on port 67: http http://10.77.0.2/boot.ipxe",
			"GET /boot.ipxe 200", "GET /boot/vmlinuz 200", "GET /boot/initrd.img 200", "GET /images/bb/latest.amd64 200"},
			[]string{"tftp: "})
		// A BIOS PXE ROM that is not iPXE (all of qemu's are): a Go DHCP client on the
		// same LAN asks as one, gets undionly.kpxe, and fetches it by TFTP, byte for byte.
		cli, err := l.net.AddHost("cli", testnet.Link{})
		if err != nil {
			t.Fatal(err)
		}
		var offer *dhcpv4.DHCPv4
		var got bytes.Buffer
		if err := cli.Do(func() error {
			c, err := nclient4.New("eth0", nclient4.WithTimeout(time.Second), nclient4.WithRetry(3))
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := dhcpv4.NewDiscovery(c.InterfaceAddr(),
				dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
				dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			offer, err = c.SendAndRead(ctx, nclient4.DefaultServers, d, func(m *dhcpv4.DHCPv4) bool {
				return m.MessageType() == dhcpv4.MessageTypeOffer && m.YourIPAddr.IsUnspecified()
			})
			if err != nil {
				return fmt.Errorf("no proxyDHCP offer: %w", err)
			}
			tc, err := tftp.NewClient(net.JoinHostPort(offer.ServerIPAddr.String(), "69"))
			if err != nil {
				return err
			}
			tc.SetBlockSize(1468)
			wt, err := tc.Receive(offer.BootFileName, "octet")
			if err != nil {
				return err
			}
			_, err = wt.WriteTo(&got)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(pxe.Undionly.Path)
		if offer.BootFileName != "undionly.kpxe" || !bytes.Equal(got.Bytes(), want) {
			t.Errorf("a BIOS PXE client got %q (%d bytes by TFTP), want undionly.kpxe (%d bytes)", offer.BootFileName, got.Len(), len(want))
		}
	})
	t.Run("OVMF-PXE", func(t *testing.T) {
		// OVMF's own PXE (no NIC ROM): ipxe.efi by TFTP, which then asks as iPXE for the menu.
		l := newPXELAN(t, nil)
		_, s := l.boot(t, pxeVM{firmware: vm.OVMF, expect: []string{"PXEv4", "iPXE", "nowhere: booting image bb", "E2E-MARK-OK"}}, 8*time.Minute)
		t.Logf("OVMF PXE -> ipxe.efi by TFTP -> menu: power-on to marker %.1f s", s)
		l.served(t, []string{"PXE (x64 UEFI) DISCOVER on port 67: tftp ipxe.efi", "read ipxe.efi:",
			"PXE (x64 UEFI, iPXE) DISCOVER on port 67: http http://10.77.0.2/boot.ipxe", "GET /boot.ipxe 200", "GET /images/bb/latest.amd64 200"}, nil)
	})
	t.Run("OVMF-HTTP", func(t *testing.T) {
		// UEFI HTTP Boot: PXE switched off in the firmware (fw_cfg), so HTTP Boot runs
		// first; ipxe.efi by HTTP, then the menu.
		l := newPXELAN(t, nil)
		_, s := l.boot(t, pxeVM{firmware: vm.OVMF, fwCfg: pxeOff,
			expect: []string{"HTTP", "iPXE", "nowhere: booting image bb", "E2E-MARK-OK"}}, 8*time.Minute)
		t.Logf("OVMF HTTP Boot -> ipxe.efi by HTTP -> menu: power-on to marker %.1f s", s)
		l.served(t, []string{"HTTP (x64 UEFI HTTP) DISCOVER on port 67: http http://10.77.0.2/boot/ipxe.efi",
			"GET /boot/ipxe.efi 200", "GET /boot.ipxe 200", "GET /images/bb/latest.amd64 200"}, []string{"tftp: "})
	})
	t.Run("SecureBoot", func(t *testing.T) {
		// OVMF with Secure Boot and Microsoft's keys, by PXE: shim (signed by Microsoft)
		// by TFTP, which fetches Debian's signed network GRUB next to itself; GRUB reads
		// grub/x86_64-efi/grub.cfg and loads the signed kernel and the initramfs by TFTP;
		// the root streams over HTTP. Debian 12's GRUB takes its TFTP server from the
		// LAN's DHCP answer (next-server) only, never from a proxyDHCP offer: so here the
		// network's DHCP server names this server as next-server for UEFI clients (one
		// setting on most routers; docs/boot.md), and nothing else changes.
		efi := []string{"--dhcp-match=set:efi64,option:client-arch,7", "--dhcp-boot=tag:efi64,shimx64.efi,,10.77.0.2"}
		l := newPXELAN(t, efi, "--secure-boot")
		c, s := l.boot(t, pxeVM{firmware: vm.SecureBoot,
			expect: []string{"PXEv4", "nowhere: booting image bb", "Secure Boot is enabled", "E2E-MARK-OK"}}, 8*time.Minute)
		t.Logf("OVMF Secure Boot PXE -> shim -> GRUB -> kernel: power-on to marker %.1f s", s)
		l.served(t, []string{"shimx64.efi:", "grubx64.efi:", "grub.cfg:", "boot/vmlinuz:", "boot/initrd.img:",
			"GET /images/bb/latest.amd64 200"}, []string{"ipxe.efi:", "GET /boot.ipxe"})
		if strings.Contains(c, "iPXE") {
			t.Errorf("iPXE ran under Secure Boot")
		}
	})
	t.Run("arm64-SecureBoot", func(t *testing.T) {
		// An arm64 server on the same LAN, booting from the same store, where bb is also
		// published for arm64 (latest.arm64 beside x86's latest). AAVMF with Secure Boot
		// and Microsoft's keys, by PXE (client architecture 11): shimaa64 by TFTP, which
		// fetches Debian's signed arm64 network GRUB; GRUB reads grub/arm64-efi/grub.cfg,
		// the menu of arm64 images, and loads the arm64 kernel and initramfs by TFTP; the
		// boot daemon follows latest.arm64. As for x86 Secure Boot, the LAN's DHCP server
		// names this server as next-server for arm64 UEFI clients.
		pxeArm64(t)
		efi := []string{"--dhcp-match=set:efiarm64,option:client-arch,11", "--dhcp-boot=tag:efiarm64,shimaa64.efi,,10.77.0.2"}
		l := newPXELAN(t, efi, "--arm64-kernel", filepath.Join(arm64Store.kdir, "vmlinuz"), "--arm64-initrd", arm64Store.initrd,
			"--arm64-append", "console=ttyAMA0 panic=-1 loglevel=4")
		c, s := l.boot(t, pxeVM{arch: "arm64", firmware: vm.SecureBoot,
			expect: []string{"nowhere: booting image bb", "Secure Boot is enabled", "E2E-ARCH: aarch64", "E2E-MARK-OK"}}, 8*time.Minute)
		t.Logf("arm64 AAVMF Secure Boot PXE -> shimaa64 -> grubaa64 -> kernel: power-on to marker %.1f s", s)
		l.served(t, []string{"PXE (arm64 UEFI) DISCOVER on port 67: tftp shimaa64.efi", "shimaa64.efi:", "grubaa64.efi:",
			"grub/arm64-efi/grub.cfg:", "boot/arm64/vmlinuz:", "boot/arm64/initrd.img:", "GET /images/bb/latest.arm64 200"},
			[]string{"GET /boot.ipxe", "boot/vmlinuz:"})
		if !strings.Contains(c, "nowhere-root: serving bb version 2") {
			t.Errorf("the arm64 machine did not boot bb version 2 (the arm64 one):\n%s", tail(c, 40))
		}
	})
	t.Run("arm64-HTTP-UKI", func(t *testing.T) {
		// arm64 UEFI HTTP Boot (client architecture 19) with Secure Boot under the snakeoil
		// key: Debian's signed GRUB has no HTTP, so the answer is a unified kernel image
		// (nowhere uki --arch arm64, signed, its command line naming bb), which the firmware
		// downloads, verifies and starts; the boot daemon follows latest.arm64.
		pxeArm64(t)
		pass := filepath.Join(t.TempDir(), "pass")
		os.WriteFile(pass, []byte("snakeoil\n"), 0o600)
		uki := filepath.Join(t.TempDir(), "nowhereaa64.efi")
		cmd := exec.Command(env.bin, "uki", "--arch", "arm64", "-o", uki, "--kernel", filepath.Join(arm64Store.kdir, "vmlinuz"),
			"--initrd", arm64Store.initrd, "--cmdline", "console=ttyAMA0 panic=-1 loglevel=4 nowhere.image=http://10.77.0.2/images/bb",
			"--sign-key", snakeoilKey, "--sign-cert", snakeoilCert, "--sign-pass-file", pass)
		cmd.Dir = t.TempDir() // the arm64 stub comes from the tree of --kernel
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nowhere uki --arch arm64: %v\n%s", err, out)
		}
		l := newPXELAN(t, nil, "--arm64-uki", uki)
		c, s := l.boot(t, pxeVM{arch: "arm64", firmware: vm.Snakeoil, fwCfg: pxeOff,
			expect: []string{"Secure Boot is enabled", "E2E-ARCH: aarch64", "E2E-MARK-OK"}}, 8*time.Minute)
		t.Logf("arm64 AAVMF snakeoil HTTP Boot -> signed UKI: power-on to marker %.1f s", s)
		l.served(t, []string{"HTTP (arm64 UEFI HTTP) DISCOVER on port 67: http http://10.77.0.2/boot/nowhereaa64.efi",
			"GET /boot/nowhereaa64.efi 200", "GET /images/bb/latest.arm64 200"}, []string{"tftp: ", "GET /boot.ipxe"})
		if !strings.Contains(c, "nowhere-root: serving bb version 2") || strings.Contains(c, "GRUB") {
			t.Errorf("want the UKI started by the firmware (no GRUB) booting bb version 2 (arm64):\n%s", tail(c, 40))
		}
	})
}
