// Package vm boots a kernel and a nowhere initramfs in qemu, with user-mode networking
// in which the guest reaches exactly one thing: a server on the host's loopback,
// relayed to the guest as http://10.0.2.100/. It watches the serial console for
// patterns, so callers (nowhere vm, the end-to-end tests, the demo and the benchmark)
// can time a boot.
package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// GuestServer is the address the guest uses for the host's server.
const GuestServer = "10.0.2.100"

// GuestURL is the base URL of the relayed server, as the guest sees it.
const GuestURL = "http://" + GuestServer

// Config is one VM.
type Config struct {
	// Arch is the machine's architecture: amd64 (""; a PC, qemu-system-x86_64) or arm64
	// (qemu-system-aarch64 -M virt -cpu max: an arm64 server, its console on ttyAMA0,
	// AAVMF as its UEFI firmware; no BIOS, no NetBoot through the NIC's iPXE ROM).
	Arch   string
	Kernel string // amd64: a PVH-capable vmlinux or a bzImage; arm64: an Image
	Initrd string
	Append string // kernel command line (console=ttyS0, on arm64 console=ttyAMA0, is added)
	Memory int    // MiB (default 1024)
	CPUs   int    // default 2
	Accel  string // auto (default), kvm or tcg
	// Relay is the command qemu runs for each guest connection to 10.0.2.100:80, with
	// the connection on its stdin and stdout (nil: the guest reaches nothing at all).
	Relay []string
	Disks []string // raw disk images attached as virtio disks (/dev/vda, /dev/vdb, ...)
	// NetBoot boots from the network like a diskless machine: no -kernel, no -initrd, the
	// firmware's iPXE (the NIC's option ROM) asks DHCP for a boot file, and qemu's DHCP
	// server answers NetBoot, a URL (for nowhere: http://10.0.2.100/boot.ipxe, the menu
	// nowhere serve hands out). Kernel, Initrd and Append are then not used.
	NetBoot string
	ROMDir  string // where the NIC's iPXE option ROM is, for NetBoot and NICROM (default: FindROMDir)

	// Firmware boots the VM like a PC: SeaBIOS or OVMF (UEFI, with or without Secure Boot)
	// starts what is on USB, CDROM or the first of Disks, or else boots from the network.
	// Kernel, Initrd and Append are then not used (Direct: qemu loads them, no firmware boot).
	Firmware Firmware
	USB      string // a raw disk image plugged in as a USB stick (xHCI), the first boot device
	CDROM    string // an ISO 9660 image in a CD-ROM drive, the first boot device
	// VarsFile is OVMF's variable store (NVRAM), written by the firmware; "": Run uses a
	// fresh copy of the firmware's template and removes it afterwards.
	VarsFile string
	// NICROM keeps the virtio NIC's iPXE option ROM (with Firmware): SeaBIOS can only boot
	// from the network through it. Without it OVMF's own PXE and HTTP Boot drivers run.
	NICROM bool
	// Tap puts the NIC on this tap device instead of qemu's user-mode network (then Relay is
	// not used): the guest is a machine on whatever LAN the tap is bridged to. NetNS is the
	// network namespace (a path, /run/netns/NAME) the tap lives in; qemu runs inside it.
	Tap, NetNS string
	FwCfg      []string // more -fw_cfg arguments (name=opt/...,string=...), for firmware settings

	Console     io.Writer // the serial console goes here (and is matched)
	Interactive bool      // connect the terminal to the console (Ctrl-A X quits)
	Expect      []*regexp.Regexp
	OnMatch     func(re *regexp.Regexp, at time.Duration) // called once per pattern
	QEMU        string                                    // default qemu-system-x86_64 (arm64: qemu-system-aarch64)
}

// Arches are the architectures a VM can have.
var Arches = []string{"amd64", "arm64"}

func (cfg Config) arm64() bool { return cfg.Arch == "arm64" }

// check refuses what the machine of cfg.Arch cannot do, in one line.
func (cfg Config) check() error {
	switch cfg.Arch {
	case "", "amd64":
		return nil
	case "arm64":
	default:
		return fmt.Errorf("vm: architecture %q: want amd64 or arm64", cfg.Arch)
	}
	switch {
	case cfg.Firmware == SeaBIOS:
		return errors.New("vm: an arm64 machine has no BIOS: --firmware uefi, secureboot or snakeoil (AAVMF)")
	case cfg.Firmware == Direct && cfg.NetBoot != "":
		return errors.New("vm: --netboot is the x86 NIC ROM's iPXE; an arm64 machine boots from the network with --firmware uefi")
	case cfg.NICROM:
		return errors.New("vm: the NIC's iPXE option ROM is x86 code; an arm64 machine uses AAVMF's own network boot")
	}
	return nil
}

// Result is how the VM ended.
type Result struct {
	Elapsed    time.Duration
	Accel      string
	PoweredOff bool // the kernel said "reboot: Power down"
	Panicked   bool // the kernel said "Kernel panic"
	Matches    map[string]time.Duration
	Console    string // everything the console printed (also when cfg.Console is set)
}

// Args returns qemu's command line for cfg (after defaults are filled in).
func Args(cfg Config, accel string) []string {
	a := []string{"-nodefaults", "-no-user-config", "-no-reboot"}
	a = append(a, firmwareArgs(cfg)...)
	a = append(a, "-accel", accel, "-m", strconv.Itoa(cfg.Memory), "-smp", strconv.Itoa(cfg.CPUs))
	console := "ttyS0"
	if cfg.arm64() {
		console = "ttyAMA0" // the virt machine's PL011 UART
		a = append(a, "-cpu", "max")
	}
	switch {
	case cfg.Firmware != Direct:
		a = append(a, mediaArgs(cfg)...)
		if cfg.NICROM {
			// As for NetBoot: the ROM by its default name, then qemu's and SeaBIOS's own files.
			a = append(a, "-L", cfg.ROMDir, "-L", "/usr/share/qemu", "-L", "/usr/share/seabios")
		}
		for _, f := range cfg.FwCfg {
			a = append(a, "-fw_cfg", f)
		}
	case cfg.NetBoot == "":
		a = append(a, "-kernel", cfg.Kernel, "-initrd", cfg.Initrd,
			"-append", strings.TrimSpace("console="+console+" "+cfg.Append))
	default:
		// qemu finds the NIC's ROM by its default name in the -L directories (a ROM given
		// by path is not patched with the device's PCI IDs, and SeaBIOS then skips it).
		// graphics=off: SeaBIOS and iPXE print on the serial console.
		a[slices.Index(a, "pc")] = "pc,graphics=off"
		a = append(a, "-L", cfg.ROMDir, "-L", "/usr/share/qemu", "-L", "/usr/share/seabios", "-boot", "order=n")
	}
	a = append(a, "-display", "none")
	if !cfg.arm64() {
		a = append(a, "-vga", "none")
	}
	if cfg.Interactive {
		a = append(a, "-serial", "mon:stdio") // the console, with the monitor behind Ctrl-A C
	} else {
		a = append(a, "-serial", "stdio", "-monitor", "none")
	}
	netdev := "user,id=n0,restrict=on"
	if cfg.Tap != "" {
		netdev = "tap,id=n0,ifname=" + escape(cfg.Tap) + ",script=no,downscript=no"
	} else if len(cfg.Relay) > 0 {
		netdev += ",guestfwd=tcp:" + GuestServer + ":80-cmd:" + strings.ReplaceAll(strings.Join(cfg.Relay, " "), ",", ",,")
	}
	nic := "virtio-net-pci,netdev=n0,romfile=" // no option ROM: the kernel is given directly
	switch {
	case cfg.Firmware != Direct:
		nic = "virtio-net-pci,netdev=n0"
		if !cfg.NICROM {
			nic += ",romfile="
		}
		if !hasBootMedia(cfg) {
			nic += ",bootindex=1"
		}
	case cfg.NetBoot != "":
		netdev += ",bootfile=" + strings.ReplaceAll(cfg.NetBoot, ",", ",,")
		nic = "virtio-net-pci,netdev=n0,bootindex=1"
	}
	a = append(a, "-netdev", netdev, "-device", nic)
	// Without RDRAND (qemu's TCG CPU) the kernel's RNG can take minutes to initialise,
	// and DHCP (transaction IDs) and TLS wait for it.
	a = append(a, "-device", "virtio-rng-pci")
	if cfg.Firmware == Direct {
		for i, d := range cfg.Disks {
			a = append(a, "-drive", fmt.Sprintf("file=%s,if=virtio,format=raw,index=%d", escape(d), i))
		}
	}
	return a
}

// hasBootMedia says whether the firmware has a disk to boot (else it boots from the network).
func hasBootMedia(cfg Config) bool { return cfg.USB != "" || cfg.CDROM != "" || len(cfg.Disks) > 0 }

// mediaArgs attach the boot media of a firmware boot, in boot order: the USB stick, the
// CD, then the disks (virtio, as /dev/vda, /dev/vdb, ... in the guest).
func mediaArgs(cfg Config) []string {
	var a []string
	boot := 1
	if cfg.USB != "" {
		a = append(a, "-device", "qemu-xhci,id=xhci",
			"-drive", "if=none,id=usbstick,format=raw,file="+escape(cfg.USB),
			"-device", fmt.Sprintf("usb-storage,bus=xhci.0,drive=usbstick,removable=on,bootindex=%d", boot))
		boot++
	}
	if cfg.CDROM != "" {
		a = append(a, "-drive", "if=none,id=cd,media=cdrom,readonly=on,file="+escape(cfg.CDROM))
		if cfg.arm64() {
			// The virt machine has no IDE: a CD drive on virtio-scsi, as arm64 servers' are.
			a = append(a, "-device", "virtio-scsi-pci,id=scsi",
				"-device", fmt.Sprintf("scsi-cd,drive=cd,bus=scsi.0,bootindex=%d", boot))
		} else {
			// ide.0 is the chipset's own controller on both machines (PIIX on pc, AHCI on q35).
			a = append(a, "-device", fmt.Sprintf("ide-cd,drive=cd,bus=ide.0,bootindex=%d", boot))
		}
		boot++
	}
	for i, d := range cfg.Disks {
		a = append(a, "-drive", fmt.Sprintf("if=none,id=disk%d,format=raw,file=%s", i, escape(d)),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d,bootindex=%d", i, boot))
		boot++
	}
	return a
}

// Run boots the VM and returns when it exits or ctx ends (then it is killed).
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Memory == 0 {
		cfg.Memory = 1024
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
		if cfg.arm64() {
			cfg.QEMU = "qemu-system-aarch64"
		}
	}
	files := []string{cfg.Kernel, cfg.Initrd}
	if cfg.Firmware != Direct {
		files = append([]string(nil), cfg.Disks...)
		for _, f := range []string{cfg.USB, cfg.CDROM} {
			if f != "" {
				files = append(files, f)
			}
		}
		if cfg.Tap != "" && len(cfg.Relay) > 0 {
			return Result{}, errors.New("vm: a VM on a tap device has no relay (the LAN it is on has the servers)")
		}
		if cfg.NICROM && cfg.ROMDir == "" {
			dir, err := FindROMDir()
			if err != nil {
				return Result{}, err
			}
			cfg.ROMDir = dir
		}
		if cfg.Firmware.UEFI() && cfg.VarsFile == "" {
			vars, err := newVars(cfg.Firmware, cfg.Arch, "")
			if err != nil {
				return Result{}, err
			}
			defer os.Remove(vars)
			cfg.VarsFile = vars
		}
	} else if cfg.NetBoot != "" {
		if cfg.ROMDir == "" {
			dir, err := FindROMDir()
			if err != nil {
				return Result{}, err
			}
			cfg.ROMDir = dir
		}
		files = []string{cfg.ROMDir}
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return Result{}, fmt.Errorf("vm: %w", err)
		}
	}
	accel, why := ChooseAccel(cfg.Accel)
	if cfg.arm64() && runtime.GOARCH != "arm64" && cfg.Accel != "kvm" {
		accel, why = "tcg", "an arm64 guest on an "+runtime.GOARCH+" host"
	}
	res := Result{Accel: accel, Matches: map[string]time.Duration{}}
	if why != "" && cfg.Console != nil {
		fmt.Fprintf(cfg.Console, "nowhere vm: accel %s (%s)\n", accel, why)
	}
	cmd := exec.Command(cfg.QEMU, Args(cfg, accel)...)
	if cfg.NetNS != "" {
		// nsenter execs qemu: cmd.Process is qemu itself, in the namespace of its tap.
		cmd = exec.Command("nsenter", append([]string{"--net=" + cfg.NetNS, "--", cfg.QEMU}, Args(cfg, accel)...)...)
	}
	if cfg.Interactive {
		// qemu reads the terminal: it must stay in the terminal's foreground process
		// group (a background group reading it would be stopped by SIGTTIN).
		cmd.Stdin = os.Stdin
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // killed with its relays
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pkg := "qemu-system-x86"
		if cfg.arm64() {
			pkg = "qemu-system-arm"
		}
		return res, fmt.Errorf("vm: %w (install %s)", err, pkg)
	}
	var console strings.Builder
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		watch(out, cfg, start, &console, &mu, res.Matches)
	}()
	waitErr := make(chan error, 1)
	go func() { <-done; waitErr <- cmd.Wait() }()
	select {
	case err = <-waitErr:
	case <-ctx.Done():
		if cfg.Interactive {
			_ = cmd.Process.Kill()
		} else {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		<-waitErr
		err = fmt.Errorf("vm: stopped after %s: %w", time.Since(start).Round(time.Second), context.Cause(ctx))
	}
	res.Elapsed = time.Since(start)
	mu.Lock()
	res.Console = console.String()
	mu.Unlock()
	res.PoweredOff = strings.Contains(res.Console, "reboot: Power down")
	res.Panicked = strings.Contains(res.Console, "Kernel panic")
	if err != nil && ctx.Err() == nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("qemu: %w: %s", err, lastLine(msg))
		}
	}
	return res, err
}

// watch copies the console to cfg.Console and records when each pattern first matches
// (on the current line as it grows, so a prompt without a newline counts).
func watch(r io.Reader, cfg Config, start time.Time, all *strings.Builder, mu *sync.Mutex, matches map[string]time.Duration) {
	br := bufio.NewReaderSize(r, 64<<10)
	buf := make([]byte, 32<<10)
	var line []byte
	check := func(l []byte) {
		l = bytes.TrimRight(l, "\r") // serial consoles end lines with \r\n
		for _, re := range cfg.Expect {
			mu.Lock()
			_, seen := matches[re.String()]
			mu.Unlock()
			if seen || !re.Match(l) {
				continue
			}
			at := time.Since(start)
			mu.Lock()
			matches[re.String()] = at
			mu.Unlock()
			if cfg.OnMatch != nil {
				cfg.OnMatch(re, at)
			}
		}
	}
	for {
		n, err := br.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if cfg.Console != nil {
				_, _ = cfg.Console.Write(chunk)
			}
			mu.Lock()
			all.Write(chunk)
			mu.Unlock()
			for _, c := range chunk {
				if c == '\n' {
					check(line)
					line = line[:0]
					continue
				}
				if len(line) < 4096 {
					line = append(line, c)
				}
			}
			check(line) // a prompt does not end with a newline
		}
		if err != nil {
			return
		}
	}
}

// ChooseAccel picks KVM only when it can run a stock kernel: /dev/kvm must open and the
// CPU must have hardware virtualisation. A /dev/kvm provided by kvm_pvm (software
// nesting, as on some cloud VMs) runs only PVM-enabled guest kernels: a stock kernel
// hangs in early boot there, so TCG is used.
func ChooseAccel(want string) (accel, why string) {
	switch want {
	case "kvm", "tcg":
		return want, "as asked"
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return "tcg", "/dev/kvm is kvm_pvm, which cannot run a stock kernel"
	}
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	if !regexp.MustCompile(`(?m)^flags\s*:.*\b(vmx|svm)\b`).Match(cpuinfo) {
		return "tcg", "the CPU has no vmx/svm"
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg", "no usable /dev/kvm: " + errors.Unwrap(err).Error()
	}
	f.Close()
	return "kvm", ""
}

// ROMDirs are where Debian's ipxe-qemu package and qemu itself keep the NICs' iPXE ROMs.
var ROMDirs = []string{"/usr/share/qemu", "/usr/lib/ipxe/qemu"}

// FindROMDir returns the directory holding efi-virtio.rom, the virtio NIC's iPXE option
// ROM by the name qemu looks for (BIOS and UEFI iPXE in one).
func FindROMDir() (string, error) {
	for _, d := range ROMDirs {
		if _, err := os.Stat(d + "/efi-virtio.rom"); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("vm: no iPXE ROM for virtio-net in %s (install ipxe-qemu: scripts/install-deps.sh)", strings.Join(ROMDirs, ", "))
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
