package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
	"github.com/nowhere-boot/nowhere/internal/boot/initramfs"
	"github.com/nowhere-boot/nowhere/internal/boot/kmod"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
)

const defaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

type initramfsOptions struct {
	output        string
	modules       string
	extraModules  []string
	extraDrivers  []string
	noDefaultMods bool
	binary        string
	arch          string // amd64 or arm64 ("": the kernel's)
	kernel        string // the kernel image, to tell its architecture
	compress      string
	caCerts       string
	keys          []string
	list          bool

	// Baked defaults (the kernel command line overrides each).
	image   string
	mirrors []string
	ip      string
	cache   string
	overlay string
	debug   bool
	proxy   string
	metrics string
	init    string

	out io.Writer // where the summary goes (nil: stdout)
}

func newInitramfsCommand() *cobra.Command {
	var o initramfsOptions
	cmd := &cobra.Command{
		Use:   "initramfs --output FILE [--modules /lib/modules/VERSION] [--image URL]",
		Short: "Build the initramfs that boots a machine from an image over HTTP",
		Long: `Initramfs writes a compressed newc cpio archive whose /init is this (static) nowhere
binary, with the kernel modules a boot needs resolved with their dependencies from
--modules (a kernel's /lib/modules/VERSION with modules.dep), loaded at boot in order,
plus network and disk drivers loaded only when their hardware is present.

The --image, --mirror, --ip, --cache, --overlay, --proxy, --metrics, --debug and --init
values are baked in as defaults, so a machine boots with an empty kernel command line;
each can still be overridden there (nowhere.image=, nowhere.mirror=, nowhere.ip=,
nowhere.cache=, nowhere.overlay=, nowhere.proxy=, nowhere.metrics=, nowhere.debug, init=).

The boot verifies the image's signature: --key bakes the publisher's public key(s) into
the initramfs as ` + trust.DefaultKeyFile + `; nowhere.key=BASE64 on the kernel command
line trusts more. Without any key the boot only runs unsigned images with
nowhere.insecure on the kernel command line (unsafe).`,
		Example: `  nowhere initramfs -o initrd.img --modules /lib/modules/6.1.0-56-amd64 \
      --image http://10.0.2.100/images/debian --key publisher.pub
  nowhere initramfs -o initrd.img --modules .cache/kernel/6.1.0-56-amd64/modules \
      --image http://boot.example.org/store/images/debian --mirror http://mirror2.example.org/store \
      --driver ixgbe --compress zstd
  nowhere initramfs --list initrd.img`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.list {
				return listInitramfs(o.output)
			}
			return runInitramfs(o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "the initramfs file to write (with --list: to read)")
	f.StringVar(&o.modules, "modules", "", "a kernel's module directory, /lib/modules/VERSION (none: no modules)")
	f.StringArrayVar(&o.extraModules, "module", nil, "also load this module at every boot (repeatable)")
	f.StringArrayVar(&o.extraDrivers, "driver", nil, "also include this driver, loaded when its hardware is present (repeatable)")
	f.BoolVar(&o.noDefaultMods, "no-default-modules", false, "include only the modules and drivers given with --module and --driver")
	f.StringVar(&o.binary, "binary", "", "the static nowhere binary to use as /init (default: this one)")
	f.StringVar(&o.arch, "arch", "", "the machine architecture, amd64 or arm64 (default: the kernel's, from --kernel or the --modules name)")
	f.StringVar(&o.kernel, "kernel", "", "the kernel image the initramfs is for, to pick /init for its architecture")
	f.StringVar(&o.compress, "compress", "gzip", "gzip, zstd or none")
	f.StringVar(&o.caCerts, "ca-certs", defaultCACerts, "CA bundle for https mirrors (none: leave out)")
	f.StringArrayVar(&o.keys, "key", nil, "trust this publisher key at boot: a minisign public key file or its base64 string (repeatable)")
	f.BoolVar(&o.list, "list", false, "list the files of the initramfs given with --output instead of writing one")
	f.StringVar(&o.image, "image", "", "default image, http(s)://HOST/PATH/images/NAME[/VERSION]")
	f.StringArrayVar(&o.mirrors, "mirror", nil, "default extra mirror: base URL of the same store (repeatable)")
	f.StringVar(&o.ip, "ip", "", "default network configuration: dhcp or ADDR/PREFIX[,GATEWAY[,DNS]]")
	// --cache means a chunk cache directory on every other verb; a block device is a
	// --cache-disk, as for vm.
	f.StringVar(&o.cache, "cache-disk", "", "default cache disk (a block device with ext4, e.g. /dev/vda)")
	deprecatedAlias(f, "initramfs", "cache", "cache-disk")
	f.StringVar(&o.overlay, "overlay", "", "default writable layer: tmpfs or a block device with ext4")
	f.StringVar(&o.proxy, "proxy", "", "default HTTP proxy for the mirrors, http://HOST:PORT")
	f.StringVar(&o.metrics, "metrics", "", "by default the root daemon serves Prometheus metrics at http://IP:PORT/metrics (e.g. 127.0.0.1:9100)")
	f.BoolVar(&o.debug, "debug", false, "boot with nowhere.debug by default")
	f.StringVar(&o.init, "init", "", "default init program in the image (default: /sbin/init)")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

func runInitramfs(o initramfsOptions) error {
	bin, err := initBinary(o)
	if err != nil {
		return err
	}
	load, drivers := kmod.DefaultLoad, kmod.DefaultDrivers
	if o.noDefaultMods {
		load, drivers = nil, nil
	}
	if o.modules == "" && (len(o.extraModules) > 0 || len(o.extraDrivers) > 0) {
		return fmt.Errorf("--module and --driver need --modules /lib/modules/VERSION")
	}
	asked := append(slices.Clone(o.extraModules), o.extraDrivers...)
	defaults, err := bakedDefaults(o)
	if err != nil {
		return err
	}
	var trusted []byte
	if len(o.keys) > 0 {
		keys, err := trust.LoadKeys(o.keys)
		if err != nil {
			return fmt.Errorf("--key: %w", err)
		}
		for _, k := range keys {
			trusted = append(trusted, k.MarshalText()...)
		}
	}
	ca := o.caCerts
	if ca == "none" {
		ca = ""
	} else if _, err := os.Stat(ca); err != nil && ca == defaultCACerts {
		ca = "" // the default bundle is optional: http mirrors need none
	}
	sum, err := initramfs.Write(o.output, initramfs.Options{
		Init:    bin,
		Modules: o.modules,
		Load:    append(slices.Clone(load), o.extraModules...),
		Drivers: append(slices.Clone(drivers), o.extraDrivers...),
		Required: func(m string) bool {
			return slices.Contains(asked, m) || slices.Contains(asked, strings.ReplaceAll(m, "_", "-"))
		},
		Defaults:    defaults,
		TrustedKeys: trusted,
		CACerts:     ca,
		Compress:    o.compress,
	})
	if err != nil {
		return err
	}
	w := o.out
	if w == nil {
		w = os.Stdout
	}
	for _, n := range sum.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	mods := "no kernel modules"
	if o.modules != "" {
		mods = fmt.Sprintf("%d kernel modules for %s", len(sum.Modules), sum.Kernel)
	}
	fmt.Fprintf(w, "wrote %s: %s (%s of %s), %d files, %s\n", o.output, units.Bytes(sum.Size), sum.Compress,
		units.Bytes(sum.Raw), sum.Files, mods)
	if defaults != "" {
		fmt.Fprintf(w, "defaults: %s\n", defaults)
	} else {
		fmt.Fprintln(w, "defaults: none (give nowhere.image=URL on the kernel command line)")
	}
	if len(trusted) > 0 {
		keys, _ := trust.ParsePublicKeys(trusted)
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID()
		}
		fmt.Fprintf(w, "trusted keys: %s (in %s)\n", strings.Join(ids, ", "), trust.DefaultKeyFile)
	} else {
		fmt.Fprintln(w, "trusted keys: none (give nowhere.key=KEY at boot, or nowhere.insecure to boot unsigned images)")
	}
	return nil
}

// bakedDefaults turns the flags into a command line, validated by the same parser the
// boot uses, so a mistake fails here and not on a machine at boot.
func bakedDefaults(o initramfsOptions) (string, error) {
	var w []string
	add := func(k, v string) {
		if v != "" {
			w = append(w, k+"="+v)
		}
	}
	add("nowhere.image", o.image)
	for _, m := range o.mirrors {
		add("nowhere.mirror", m)
	}
	add("nowhere.ip", o.ip)
	add("nowhere.cache", o.cache)
	add("nowhere.overlay", o.overlay)
	add("nowhere.proxy", o.proxy)
	add("nowhere.metrics", o.metrics)
	if o.debug {
		w = append(w, "nowhere.debug")
	}
	add("init", o.init)
	c, err := cmdline.Parse(cmdline.Layer{Name: "initramfs flags", Text: strings.Join(w, " ")})
	if err != nil {
		return "", err
	}
	return c.Encode(), nil
}

func listInitramfs(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := initramfs.List(f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, n := range names {
		fmt.Println(n)
	}
	return nil
}
