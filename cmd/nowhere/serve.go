package main

import (
	"context"
	"debug/pe"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/net/netutil"

	"github.com/nowhere-boot/nowhere/internal/bootmenu"
	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/pxe"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

type serveOptions struct {
	listen string
	quiet  bool
	limits serveLimits
	menu   bootmenu.Options
	pxe    pxeOptions
}

type pxeOptions struct {
	iface      string
	secureBoot bool
	wait       time.Duration
	// arm64 machines: their kernel, initramfs and kernel command line ("": --boot-append's).
	armKernel, armInitrd, armAppend string
	armUKI                          string // what arm64 UEFI HTTP Boot starts
}

// arm64 says whether arm64 machines are answered too.
func (p pxeOptions) arm64() bool { return p.armKernel != "" || p.armInitrd != "" }

func newServeCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve DIR|s3://BUCKET/PREFIX",
		Short: "Serve a store read-only over HTTP",
		Long: `Serve makes a store available to clients over plain HTTP: GET and HEAD, Range
requests, ETags, and Cache-Control headers that let proxies and CDNs keep chunks and
versioned indexes for a year. Any static web server (nginx, a CDN) can do the same.

A store in a bucket (s3://BUCKET/PREFIX) is served through: each request becomes a HEAD
and a GET of the object, with the same answers as for a directory. Endpoint and
credentials as for every s3:// store (--s3-endpoint, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
~/.aws/credentials; none: anonymous, enough for a public bucket). The bucket is checked
before the server listens. A public bucket needs no serve at all: its HTTP address is
already a store (docs/updates.md).

It also hands out the diskless boot menu, /boot.ipxe: an iPXE script listing the store's
images (the default first), each entry booting the kernel (/boot/vmlinuz) and the nowhere
initramfs (/boot/initrd.img) over HTTP with nowhere.image= naming the image on this server.
The kernel and initramfs are --kernel and --initrd, or the store's boot/vmlinuz and
boot/initrd.img. Bake the publisher's key into the initramfs (nowhere initramfs --key):
the menu carries no keys (docs/boot.md, "Diskless boot menu").

With --pxe IFACE it also boots the machines of the LAN on IFACE that start from the
network (PXE or UEFI HTTP Boot), without touching the LAN's DHCP: a proxyDHCP responder
(UDP 67 and 4011) answers only PXE and HTTP Boot clients, never with an address, naming
a boot loader: iPXE (undionly.kpxe for BIOS, ipxe.efi for UEFI) over TFTP (UDP 69,
read-only, those files only), which then loads the menu; or with --secure-boot,
Microsoft-signed shim and Debian-signed GRUB over TFTP for UEFI PXE clients, whose
grub.cfg lists the same images and loads --kernel and --initrd by TFTP. Debian 12's GRUB
finds its server only as the LAN DHCP server's next-server, not from a proxyDHCP offer:
with --secure-boot, set next-server (the "TFTP server" of most routers) to this machine.
UEFI HTTP Boot clients get ipxe.efi (Secure Boot off). The LAN's DHCP server still hands
out the addresses (docs/boot.md, "On real hardware").`,
		Example: `  nowhere serve ./store
  nowhere serve /srv/nowhere --listen 0.0.0.0:8080
  AWS_PROFILE=publisher nowhere serve s3://images/nowhere --s3-endpoint http://minio:9000 --listen 0.0.0.0:8080
  nowhere serve /srv/nowhere --listen 0.0.0.0:80 --kernel vmlinuz --initrd initrd.img \
      --boot-default debian --boot-append console=ttyS0
  nowhere serve /srv/nowhere --listen 0.0.0.0:80 --kernel vmlinuz --initrd initrd.img --pxe eth0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range []string{"secure-boot", "pxe-wait", "arm64-kernel", "arm64-initrd", "arm64-append", "arm64-uki"} {
				if o.pxe.iface == "" && cmd.Flags().Changed(f) {
					return fmt.Errorf("--%s needs --pxe IFACE", f)
				}
			}
			return runServe(cmd.Context(), args[0], o)
		},
	}
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	cmd.Flags().BoolVar(&o.quiet, "quiet", false, "no access log")
	f := cmd.Flags()
	durationVar(f, &o.limits.read, "read-timeout", defaultServeLimits.read, "drop a client that takes longer to send its request")
	durationVar(f, &o.limits.write, "write-timeout", defaultServeLimits.write, "drop a client that takes longer to take an answer (one that never reads)")
	durationVar(f, &o.limits.idle, "idle-timeout", defaultServeLimits.idle, "close a kept-alive connection idle this long")
	f.IntVar(&o.limits.conns, "max-conns", defaultServeLimits.conns, "connections served at once; more wait to be accepted")
	f.StringVar(&o.menu.Kernel, "kernel", "", "boot menu: serve this kernel (a bzImage) as /boot/vmlinuz (default: the store's boot/vmlinuz)")
	f.StringVar(&o.menu.Initrd, "initrd", "", "boot menu: serve this nowhere initramfs as /boot/initrd.img (default: the store's boot/initrd.img)")
	f.StringVar(&o.menu.Default, "boot-default", "", "boot menu: the default image (default: the first by name)")
	durationVar(f, &o.menu.Timeout, "boot-timeout", bootmenu.DefaultTimeout, "boot menu: boot the default after this long without a choice")
	f.StringVar(&o.menu.URL, "boot-url", "", "boot menu: this server's base URL as the machines reach it (default: from each request's Host header)")
	f.StringArrayVar(&o.menu.Mirrors, "boot-mirror", nil, "boot menu: another base URL of this store (nowhere.mirror=, repeatable)")
	f.StringVar(&o.menu.Append, "boot-append", "", "boot menu: more kernel command line on every entry (console=ttyS0, nowhere.cache=/dev/sda, ...)")
	f.StringVar(&o.pxe.iface, "pxe", "", "boot the LAN on this interface: proxyDHCP and TFTP for PXE and UEFI HTTP Boot clients (the LAN's DHCP server still hands out addresses)")
	f.BoolVar(&o.pxe.secureBoot, "secure-boot", false, "with --pxe: UEFI clients boot shim and Debian's signed GRUB instead of iPXE (for Secure Boot)")
	durationVar(f, &o.pxe.wait, "pxe-wait", 5*time.Second, "with --pxe: how long to look for the LAN's DHCP server (and for another PXE server) before serving")
	f.StringVar(&o.pxe.armKernel, "arm64-kernel", "", "with --pxe: also boot arm64 UEFI machines (PXE and HTTP Boot), with this arm64 kernel (Debian's signed Image), through Debian's signed arm64 shim and GRUB")
	f.StringVar(&o.pxe.armInitrd, "arm64-initrd", "", "with --arm64-kernel: the nowhere initramfs built from that kernel's modules")
	f.StringVar(&o.pxe.armAppend, "arm64-append", "", "with --arm64-kernel: the kernel command line of the arm64 menu's entries (default: --boot-append's)")
	f.StringVar(&o.pxe.armUKI, "arm64-uki", "", "with --pxe: arm64 UEFI HTTP Boot clients start this unified kernel image (nowhere uki --arch arm64, its command line naming the image; signed for Secure Boot)")
	return cmd
}

func runServe(ctx context.Context, loc string, o serveOptions) error {
	st, err := openServed(loc)
	if err != nil {
		return err
	}
	defer st.close()
	// The menu is on when asked for (then it must work) or when the store has the boot files.
	menuErr := bootmenu.CheckStore(st.exists, o.menu)
	menu := menuErr == nil
	if asked := o.menu.Kernel != "" || o.menu.Initrd != "" || o.menu.Default != ""; asked && menuErr != nil {
		return menuErr
	}
	var lan *pxeLAN
	if o.pxe.iface != "" {
		if !menu {
			return fmt.Errorf("--pxe needs the boot menu: %v", menuErr)
		}
		if lan, err = checkPXE(o); err != nil {
			return err
		}
	}
	if err := o.limits.check(); err != nil {
		return err
	}
	if !store.IsS3(loc) && st.exists("images") != nil {
		logf("warning: %s holds no images/: is it a store? (nothing to boot or mount from it yet)", st.name)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	ln = netutil.LimitListener(ln, o.limits.conns)
	h := server.FilesHandler(st.files)
	if menu {
		h = bootmenu.StoreHandler(st.list, h, o.menu)
	}
	if lan != nil {
		stop, wrapped, err := lan.start(ln.Addr().(*net.TCPAddr).Port, st, o, h)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
		h = wrapped
	}
	if !o.quiet {
		access := log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
		h = server.AccessLog(h, access.Printf)
	}
	srv := o.limits.server(h)
	// The root context catches signals from the start: a SIGTERM that arrives before
	// anyone can know we serve still shuts the server down gracefully.
	// Signals after the first are taken and dropped, as they always were here: the
	// graceful shutdown is bounded (10 s below) and a second SIGTERM from a service
	// manager must not cut the requests in flight short.
	_ = forceSignals(ctx)
	fmt.Printf("serving %s on http://%s\n", st.name, ln.Addr())
	if menu {
		fmt.Printf("boot menu: http://%s%s\n", ln.Addr(), bootmenu.ScriptPath)
	}

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		logf("%s: finishing requests in flight, then exiting", context.Cause(ctx))
	}
	// Shutdown gets its own deadline: ctx is already done.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// served is a store to serve: its files, and what the boot menu needs of it.
type served struct {
	name   string
	files  server.Files
	exists func(name string) error // nil: the store has the file
	list   func(context.Context) ([]bootmenu.Entry, error)
	close  func()
}

// openServed opens the store to serve: a directory, or s3://BUCKET/PREFIX served through
// (checked now, so that a missing bucket or refused credentials stop the server before
// it listens).
func openServed(loc string) (*served, error) {
	if store.IsS3(loc) {
		s, err := openS3(strings.TrimSuffix(loc, "/"))
		if err != nil {
			return nil, err
		}
		if err := s.Probe(context.Background(), catalog.NamesPath); err != nil {
			return nil, err
		}
		return &served{
			name:  s.String(),
			files: server.S3Files(s, logf),
			exists: func(name string) error {
				o, err := s.Open(context.Background(), name)
				if err == nil {
					o.Close()
				}
				return err
			},
			list:  func(ctx context.Context) ([]bootmenu.Entry, error) { return bootmenu.ListStore(ctx, s) },
			close: func() {},
		}, nil
	}
	st, err := os.Stat(loc)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", loc, unwrapPathError(err))
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("store %s: not a directory", loc)
	}
	root, err := os.OpenRoot(loc)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", loc, unwrapPathError(err))
	}
	return &served{
		name:   loc,
		files:  server.DirFiles(root),
		exists: func(name string) error { _, err := os.Stat(loc + "/" + name); return err },
		list:   func(ctx context.Context) ([]bootmenu.Entry, error) { return bootmenu.List(ctx, loc) },
		close:  func() { root.Close() },
	}, nil
}

// pxeLAN is what --pxe serves on.
type pxeLAN struct {
	iface      string
	addr       netip.Addr
	armLoaders []pxe.Loader // arm64 machines' shim and GRUB (nil: arm64 is not answered)
}

// checkPXE checks what --pxe needs before anything listens: the interface and its
// address, the loaders, and an HTTP listen address the LAN can reach.
func checkPXE(o serveOptions) (*pxeLAN, error) {
	addr, err := pxe.InterfaceIPv4(o.pxe.iface)
	if err != nil {
		return nil, err
	}
	if err := pxe.CheckLoaders(pxe.Loaders(o.pxe.secureBoot)); err != nil {
		return nil, err
	}
	if o.pxe.secureBoot && (o.menu.Kernel == "" || o.menu.Initrd == "") {
		// GRUB fetches them by TFTP, which serves files of this machine only.
		return nil, errors.New("--secure-boot needs --kernel and --initrd: Debian's signed GRUB loads them by TFTP from this server")
	}
	var armLoaders []pxe.Loader
	if o.pxe.arm64() {
		if o.pxe.armKernel == "" || o.pxe.armInitrd == "" {
			return nil, errors.New("--arm64-kernel and --arm64-initrd go together: Debian's signed arm64 GRUB loads both by TFTP from this server")
		}
		if a, err := kernelArch(o.pxe.armKernel); err != nil {
			return nil, fmt.Errorf("--arm64-kernel: %w", err)
		} else if a != "arm64" {
			return nil, fmt.Errorf("--arm64-kernel %s is not an arm64 kernel Image", o.pxe.armKernel)
		}
		if _, err := os.Stat(o.pxe.armInitrd); err != nil {
			return nil, fmt.Errorf("--arm64-initrd: %w", err)
		}
		root, err := archRoot("arm64", o.pxe.armKernel)
		if err != nil {
			return nil, fmt.Errorf("--arm64-kernel: %w", err)
		}
		armLoaders = pxe.ArmLoaders(root)
		if err := pxe.CheckLoaders(armLoaders); err != nil {
			return nil, err
		}
	}
	host, _, err := net.SplitHostPort(o.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	if ip, err := netip.ParseAddr(host); host != "" && (err != nil || !ip.IsUnspecified() && ip.Unmap() != addr) {
		return nil, fmt.Errorf("--pxe %s: --listen %s is not reachable from that LAN: listen on %s or 0.0.0.0", o.pxe.iface, o.listen, addr)
	}
	if o.pxe.armUKI != "" {
		if err := checkArmUKI(o.pxe.armUKI); err != nil {
			return nil, err
		}
	}
	return &pxeLAN{iface: o.pxe.iface, addr: addr, armLoaders: armLoaders}, nil
}

// start probes the LAN, then starts the proxyDHCP responder and the TFTP server, and
// returns the HTTP handler that also serves the loaders, and what stops it all.
func (l *pxeLAN) start(port int, st *served, o serveOptions, h http.Handler) (func(), http.Handler, error) {
	say := logf
	if o.quiet {
		say = func(string, ...any) {}
	}
	base := strings.TrimSuffix(o.menu.URL, "/")
	if base == "" {
		// Port 80 left out: GRUB (2.06) takes the server of an HTTP Boot URI as is, and
		// "10.0.0.2:80" is no host name it can resolve.
		base = "http://" + l.addr.String()
		if port != 80 {
			base = "http://" + netip.AddrPortFrom(l.addr, uint16(port)).String()
		}
	}
	files := &pxe.Files{Loaders: pxe.Loaders(o.pxe.secureBoot)}
	if o.pxe.secureBoot {
		files.Loaders = append(files.Loaders,
			pxe.Loader{Name: pxe.GrubKernel, Path: o.menu.Kernel}, pxe.Loader{Name: pxe.GrubInitrd, Path: o.menu.Initrd})
		gen, err := pxe.GrubMenu(base, "amd64", st.list, o.menu)
		if err != nil {
			return nil, nil, err
		}
		files.Generated = map[string]func(context.Context) ([]byte, error){pxe.GrubCfg: gen, pxe.GrubArchCfg: gen}
	}
	if l.armLoaders != nil {
		files.Loaders = append(append(files.Loaders, l.armLoaders...),
			pxe.Loader{Name: pxe.GrubArm64Kernel, Path: o.pxe.armKernel}, pxe.Loader{Name: pxe.GrubArm64Initrd, Path: o.pxe.armInitrd})
		armMenu := o.menu
		if o.pxe.armAppend != "" {
			armMenu.Append = o.pxe.armAppend
		}
		gen, err := pxe.GrubMenu(base, "arm64", st.list, armMenu)
		if err != nil {
			return nil, nil, err
		}
		if files.Generated == nil {
			files.Generated = map[string]func(context.Context) ([]byte, error){}
		}
		files.Generated[pxe.GrubArm64Cfg] = gen
		dispatch := pxe.GrubDispatch()
		files.Generated[pxe.GrubCfg] = func(context.Context) ([]byte, error) { return dispatch, nil }
	}
	// Before answering anyone: who else answers here?
	res, err := pxe.Probe(context.Background(), l.iface, o.pxe.wait)
	if err != nil {
		return nil, nil, fmt.Errorf("--pxe %s: probing the LAN for DHCP servers: %w", l.iface, err)
	}
	if len(res.PXE) > 0 {
		p := res.PXE[0]
		return nil, nil, fmt.Errorf("--pxe %s: another PXE server, %v, already answers PXE clients on this LAN (boot file %q): machines would race between the two; stop it or leave out --pxe", l.iface, p.Server, p.BootFile)
	}
	if len(res.DHCP) == 0 {
		// A warning, not an error: the DHCP server may come up later, or answer only
		// after this probe gave up; the proxy is harmless until it does, and machines
		// start booting as soon as it answers.
		logf("warning: --pxe %s: no DHCP server answered on this LAN within %s, and --pxe does not hand out addresses: machines will not boot until a DHCP server runs here", l.iface, o.pxe.wait)
	} else {
		say("pxe: the LAN's DHCP server %v hands out addresses on %s (it offered %v)", res.DHCP[0].Server, l.iface, res.DHCP[0].YourIP)
	}
	if o.pxe.armUKI != "" {
		files.Loaders = append(files.Loaders, pxe.Loader{Name: pxe.ArmUKI, Path: o.pxe.armUKI})
	}
	cfg := pxe.Config{Addr: l.addr, HTTPBase: base, MenuURL: base + bootmenu.ScriptPath, SecureBoot: o.pxe.secureBoot,
		Arm64: l.armLoaders != nil, Arm64UKI: o.pxe.armUKI != ""}
	resp, err := pxe.Listen(l.iface, cfg, say)
	if err != nil {
		return nil, nil, err
	}
	tftp, err := pxe.ListenTFTP(netip.AddrPortFrom(l.addr, pxe.TFTPPort).String(), files, say)
	if err != nil {
		resp.Close()
		return nil, nil, err
	}
	go func() {
		if err := resp.Serve(); err != nil {
			logf("pxe: %v", err)
		}
	}()
	go func() {
		if err := tftp.Serve(); err != nil {
			logf("tftp: %v", err)
		}
	}()
	loaders := "undionly.kpxe, ipxe.efi"
	if o.pxe.secureBoot {
		loaders += ", shimx64.efi, grubx64.efi, grub/grub.cfg, " + pxe.GrubKernel + ", " + pxe.GrubInitrd
	}
	fmt.Printf("pxe: proxyDHCP on %s (%s, UDP 67 and 4011), TFTP on %s (%s), loaders also at %s/boot/\n", l.iface, l.addr, tftp.Addr(), loaders, base)
	stop := func() {
		resp.Close()
		tftp.Close()
	}
	return stop, files.Handler(h, say), nil
}

// serveLimits bound what one client can hold of the server.
type serveLimits struct {
	read, write, idle time.Duration
	conns             int
}

// defaultServeLimits: a request is a few hundred bytes; the largest answer is a kernel
// or initramfs (tens of MB), which a slow link still takes within the write timeout.
var defaultServeLimits = serveLimits{read: 30 * time.Second, write: 5 * time.Minute, idle: 2 * time.Minute, conns: 1024}

func (l serveLimits) check() error {
	switch {
	case l.read <= 0:
		return fmt.Errorf("--read-timeout %s: must be positive", l.read)
	case l.write <= 0:
		return fmt.Errorf("--write-timeout %s: must be positive", l.write)
	case l.idle <= 0:
		return fmt.Errorf("--idle-timeout %s: must be positive", l.idle)
	case l.conns < 1:
		return fmt.Errorf("--max-conns %d: must be at least 1", l.conns)
	}
	return nil
}

// server returns the HTTP server for h with the limits' timeouts.
func (l serveLimits) server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, l.read),
		ReadTimeout:       l.read,
		WriteTimeout:      l.write,
		IdleTimeout:       l.idle,
	}
}

// checkArmUKI checks that file is an arm64 EFI program (a UKI from nowhere uki --arch
// arm64): firmware that downloads anything else by HTTP Boot only fails later, on screen.
func checkArmUKI(file string) error {
	f, err := pe.Open(file)
	if err != nil {
		return fmt.Errorf("--arm64-uki %s: not an EFI program: %v", file, err)
	}
	defer f.Close()
	if f.Machine != pe.IMAGE_FILE_MACHINE_ARM64 {
		return fmt.Errorf("--arm64-uki %s: an EFI program for machine %#x, not arm64", file, f.Machine)
	}
	for _, s := range f.Sections {
		if s.Name == ".linux" {
			return nil
		}
	}
	return fmt.Errorf("--arm64-uki %s: no .linux section: not a unified kernel image (nowhere uki --arch arm64 makes one)", file)
}
