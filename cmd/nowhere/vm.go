package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/bootmenu"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type vmOptions struct {
	kernel, initrd, appendArgs string
	store, image, forward      string
	memory, cpus               int
	accel                      string
	cacheDisk, cacheSize       string
	timeout                    time.Duration
	interactive                bool
	expect                     []string
	logFile                    string
	quiet                      bool
	netboot                    bool
	firmware                   string
	usb, cdrom                 string
	arch                       string
}

func newVMCommand() *cobra.Command {
	var o vmOptions
	cmd := &cobra.Command{
		Use:   "vm --kernel VMLINUX --initrd INITRAMFS [--store DIR --image NAME | --forward ADDR]",
		Short: "Boot a kernel and a nowhere initramfs in qemu, from a store on this machine",
		Long: `Vm boots qemu-system-x86_64 (KVM when it can run a stock kernel, else TCG) with the
kernel, the initramfs and user-mode networking in which the guest reaches exactly one
thing: http://10.0.2.100/, relayed to a server on this machine's loopback (restrict=on:
nothing else, not the host, not the internet). With --store, vm serves the store itself
on a free loopback port and counts what the guest fetched; with --forward, it relays
to a server you run (nowhere serve, nginx).

The serial console is shown on standard output. --expect REGEX notes when the console
first shows REGEX (the first one is the boot's finish line: "booted from HTTP: fetched
X MiB of Y MiB in Z s"). The VM stops when the guest powers off, or is killed after
--timeout.

--arch arm64 boots an arm64 machine instead (qemu-system-aarch64 -M virt -cpu max, TCG
on another host; the console on ttyAMA0): Debian's arm64 kernel (the Image vmlinuz that
scripts/fetch-kernel.sh arm64 caches) with an initramfs built from its modules, or with
--firmware uefi, secureboot or snakeoil, AAVMF (qemu-efi-aarch64) booting --usb or
--cdrom media from nowhere bootdisk --arch arm64, or the network. The architecture is
also read from --kernel.`,
		Example: `  nowhere vm --kernel .cache/kernel/6.1.0-56-amd64/vmlinux --initrd initrd.img \
      --store ./store --image debian --expect 'login: *$'
  nowhere vm --kernel vmlinux --initrd initrd.img --forward 127.0.0.1:8080 \
      --append nowhere.image=http://10.0.2.100/images/debian --interactive
  nowhere vm --arch arm64 --smp 1 --kernel .cache/kernel/6.1.0-56-arm64/vmlinuz --initrd initrd-arm64.img \
      --store ./store --image bb-arm64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runVM(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kernel, "kernel", "", "kernel: an uncompressed PVH vmlinux (boots faster under TCG) or a bzImage")
	f.StringVar(&o.initrd, "initrd", "", "the initramfs (nowhere initramfs)")
	f.StringVar(&o.appendArgs, "append", "", "more kernel command line (console=ttyS0, on arm64 console=ttyAMA0, is always there)")
	f.StringVar(&o.arch, "arch", "", "the machine: amd64 (a PC) or arm64 (qemu's virt machine) (default: --kernel's, else amd64)")
	f.StringVar(&o.store, "store", "", "serve this store directory to the guest as http://10.0.2.100/")
	f.StringVar(&o.image, "image", "", "with --store: boot this image (adds nowhere.image=http://10.0.2.100/images/NAME)")
	f.StringVar(&o.forward, "forward", "", "relay http://10.0.2.100/ to this loopback address (host:port) instead")
	f.IntVar(&o.memory, "mem", 1024, "guest memory in MiB")
	f.IntVar(&o.cpus, "smp", 2, "guest CPUs")
	f.StringVar(&o.accel, "accel", "auto", "auto, kvm or tcg")
	f.StringVar(&o.cacheDisk, "cache-disk", "", "attach this file as the guest's chunk cache /dev/vda (created with ext4 if missing)")
	sizeVar(f, &o.cacheSize, "cache-size", "1G", "size of a new --cache-disk")
	durationVar(f, &o.timeout, "timeout", 10*time.Minute, "kill the VM after this long (0: never)")
	f.BoolVar(&o.interactive, "interactive", false, "connect this terminal to the console (quit qemu with Ctrl-A X)")
	f.StringArrayVar(&o.expect, "expect", nil, "note when the console first shows this regular expression (repeatable)")
	f.StringVar(&o.logFile, "log", "", "also write the console to this file")
	f.BoolVar(&o.quiet, "quiet", false, "do not show the console (with --log, it is still written there)")
	f.BoolVar(&o.netboot, "netboot", false, "boot like a diskless machine: the NIC's iPXE fetches http://10.0.2.100/boot.ipxe (with --store: served here, with --kernel (a bzImage) and --initrd; --image is the default entry)")
	f.StringVar(&o.firmware, "firmware", "direct", "direct (qemu loads --kernel and --initrd), or boot like a PC: bios (SeaBIOS), uefi (OVMF), secureboot (OVMF, Microsoft's keys, Secure Boot enforced), snakeoil (OVMF, Debian's test key)")
	f.StringVar(&o.usb, "usb", "", "with --firmware: plug this disk image (nowhere bootdisk) in as a USB stick and boot it")
	f.StringVar(&o.cdrom, "cdrom", "", "with --firmware: put this ISO (nowhere bootdisk --iso) in the CD-ROM drive and boot it")
	cmd.AddCommand(newVMRelayCommand())
	return cmd
}

// newVMRelayCommand is what qemu runs for each guest connection (guestfwd=...-cmd:).
func newVMRelayCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "relay ADDR",
		Short:  "Copy standard input and output to a TCP address (used by qemu's guestfwd)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		Run: func(cmd *cobra.Command, args []string) {
			// Standard error is the guest's connection too: fail without a word, and the
			// guest sees the connection close.
			if err := vm.Relay(args[0], os.Stdin, os.Stdout); err != nil {
				os.Exit(1)
			}
		},
	}
}

func runVM(ctx context.Context, o vmOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.store != "" && o.forward != "" {
		return errors.New("give --store or --forward, not both")
	}
	if o.image != "" && o.store == "" {
		return errors.New("--image needs --store (with --forward, pass nowhere.image= in --append)")
	}
	firmware, err := vm.ParseFirmware(o.firmware)
	if err != nil {
		return fmt.Errorf("--firmware: %w", err)
	}
	kernelForArch := o.kernel
	if firmware != vm.Direct || o.netboot {
		kernelForArch = "" // the media or the server carry the kernel
	}
	arch, err := bootArch(o.arch, kernelForArch)
	if err != nil {
		return err
	}
	if firmware == vm.Direct && (o.usb != "" || o.cdrom != "") {
		return errors.New("--usb and --cdrom need --firmware (bios, uefi, secureboot or snakeoil): qemu's direct boot ignores disks")
	}
	if firmware != vm.Direct && o.netboot {
		return errors.New("--netboot boots through the NIC's iPXE under SeaBIOS: leave out --firmware")
	}
	for _, f := range []struct{ flag, path string }{{"--usb", o.usb}, {"--cdrom", o.cdrom}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	if o.netboot && o.store == "" && o.forward == "" {
		return errors.New("--netboot needs --store, or --forward to a nowhere serve that hands out /boot.ipxe")
	}
	for _, f := range []struct{ flag, path string }{{"--kernel", o.kernel}, {"--initrd", o.initrd}} {
		if f.path == "" && o.netboot && o.forward != "" {
			continue // the server hands them out
		}
		if firmware != vm.Direct {
			continue // the boot media carry them
		}
		if f.path == "" {
			return fmt.Errorf("%s is required", f.flag)
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	var (
		addr  string
		srv   *vm.Server
		total int64
	)
	appendArgs := "panic=-1 " + o.appendArgs
	switch {
	case o.store != "" && o.netboot:
		// The menu's entries carry the command line; the guest's kernel comes from iPXE.
		menu := bootmenu.Options{Kernel: o.kernel, Initrd: o.initrd, Default: o.image,
			Timeout: 2 * time.Second, Append: "console=ttyS0 " + appendArgs}
		if o.cacheDisk != "" {
			menu.Append += " nowhere.cache=/dev/vda"
		}
		if err := bootmenu.Check(o.store, menu); err != nil {
			return err
		}
		var err error
		srv, err = vm.ServeWith(o.store, "127.0.0.1:0", nil, func(h http.Handler) http.Handler {
			return bootmenu.Handler(o.store, h, menu)
		})
		if err != nil {
			return err
		}
		defer srv.Close()
		addr = srv.Addr
		if o.image != "" {
			if total, err = imageSize(ctx, o.store, o.image); err != nil {
				return err
			}
		}
	case o.store != "":
		var err error
		if srv, err = vm.Serve(o.store, nil); err != nil {
			return err
		}
		defer srv.Close()
		addr = srv.Addr
		if o.image != "" {
			total, err = imageSize(ctx, o.store, o.image)
			if err != nil {
				return err
			}
			// With firmware the boot media's menu names the image.
			appendArgs += " nowhere.image=" + vm.GuestURL + "/images/" + o.image
		}
	case o.forward != "":
		if err := checkLoopback(o.forward); err != nil {
			return err
		}
		addr = o.forward
	}
	var relay []string
	if addr != "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		relay = []string{exe, "vm", "relay", addr}
	}
	var disks []string
	if o.cacheDisk != "" {
		if err := ensureCacheDisk(o.cacheDisk, o.cacheSize); err != nil {
			return err
		}
		disks = append(disks, o.cacheDisk)
		appendArgs += " nowhere.cache=/dev/vda"
	}

	var console io.Writer = os.Stdout
	if o.quiet {
		console = io.Discard
	}
	if o.logFile != "" {
		lf, err := os.Create(o.logFile)
		if err != nil {
			return fmt.Errorf("--log: %w", err)
		}
		defer lf.Close()
		console = io.MultiWriter(console, lf)
	}
	var expect []*regexp.Regexp
	for _, e := range o.expect {
		re, err := regexp.Compile(e)
		if err != nil {
			return fmt.Errorf("--expect %q: %w", e, err)
		}
		expect = append(expect, re)
	}
	onMatch := func(re *regexp.Regexp, at time.Duration) {
		fmt.Fprintf(os.Stderr, "\nnowhere vm: /%s/ after %.1f s\n", re, at.Seconds())
		if re == expect[0] && srv != nil && total > 0 {
			c := srv.Counts()
			if o.netboot { // the kernel and the initramfs came over HTTP too
				fmt.Fprintf(os.Stderr, "booted from HTTP: fetched %.1f MiB of %.1f MiB in %.1f s (%d requests), and %.1f MiB of kernel, initramfs and menu\n",
					mib(c.ChunkBytes), mib(total), at.Seconds(), c.ChunkRequests, mib(c.Bytes-c.ChunkBytes))
			} else {
				fmt.Fprintf(os.Stderr, "booted from HTTP: fetched %.1f MiB of %.1f MiB in %.1f s (%d requests)\n",
					mib(c.Bytes), mib(total), at.Seconds(), c.Requests)
			}
		}
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("--timeout %s", o.timeout))
		defer cancel()
	}
	netboot := ""
	if o.netboot {
		netboot = vm.GuestURL + bootmenu.ScriptPath
	}
	res, err := vm.Run(ctx, vm.Config{
		Arch: arch, Kernel: o.kernel, Initrd: o.initrd, Append: appendArgs, NetBoot: netboot,
		Firmware: firmware, USB: o.usb, CDROM: o.cdrom,
		Memory: o.memory, CPUs: o.cpus, Accel: o.accel,
		Relay: relay, Disks: disks,
		Console: console, Interactive: o.interactive, Expect: expect, OnMatch: onMatch,
	})
	end := "the VM exited"
	switch {
	case res.PoweredOff:
		end = "the guest powered off"
	case res.Panicked:
		end = "the guest kernel panicked"
	}
	fmt.Fprintf(os.Stderr, "\nnowhere vm: %s after %.1f s (accel %s)", end, res.Elapsed.Seconds(), res.Accel)
	if srv != nil {
		c := srv.Counts()
		// MiB with one decimal, as the "booted from HTTP" line above it (which the
		// benchmarks parse) and everything else the tool prints.
		fmt.Fprintf(os.Stderr, "; served %d requests, %.1f MiB", c.Requests, mib(c.Bytes))
	}
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	if res.Panicked {
		return errors.New("the guest kernel panicked")
	}
	return nil
}

func imageSize(ctx context.Context, dir, name string) (int64, error) {
	loc, err := image.ParseLocation(dir + "/images/" + name)
	if err != nil {
		return 0, err
	}
	s, err := image.OpenStore(loc.Store)
	if err != nil {
		return 0, err
	}
	ix, _, err := image.Load(ctx, s, loc, store.Policy{Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	return ix.Size, nil
}

// checkLoopback keeps the guest's one way out pointed at this machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--forward %q: want HOST:PORT", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--forward %q: the guest may only reach this machine's loopback (127.0.0.1, ::1)", addr)
	}
	return nil
}

func ensureCacheDisk(file, size string) error {
	if _, err := os.Stat(file); err == nil {
		return nil
	}
	n, err := units.ParseBytes(size)
	if err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		return fmt.Errorf("--cache-disk: %w", err)
	}
	if err := os.Truncate(tmp, n); err != nil {
		return err
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "nowhere-cache", tmp).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mkfs.ext4 %s: %v: %s", tmp, err, strings.TrimSpace(string(out)))
	}
	return os.Rename(tmp, file)
}

// mib is n bytes in MiB, for the one-decimal figures of the boot's finish line.
func mib[T ~int | ~int64](n T) float64 { return float64(n) / (1 << 20) }
