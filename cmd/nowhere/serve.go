package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/bootmenu"
	"github.com/nowhere-boot/nowhere/internal/server"
)

type serveOptions struct {
	listen string
	quiet  bool
	menu   bootmenu.Options
}

func newServeCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve DIR",
		Short: "Serve a store read-only over HTTP",
		Long: `Serve makes a store available to clients over plain HTTP: GET and HEAD, Range
requests, ETags, and Cache-Control headers that let proxies and CDNs keep chunks and
versioned indexes for a year. Any static web server (nginx, a CDN) can do the same.

It also hands out the diskless boot menu, /boot.ipxe: an iPXE script listing the store's
images (the default first), each entry booting the kernel (/boot/vmlinuz) and the nowhere
initramfs (/boot/initrd.img) over HTTP with nowhere.image= naming the image on this server.
The kernel and initramfs are --kernel and --initrd, or the store's boot/vmlinuz and
boot/initrd.img. Bake the publisher's key into the initramfs (nowhere initramfs --key):
the menu carries no keys (docs/boot.md, "Diskless boot menu").`,
		Example: `  nowhere serve ./store
  nowhere serve /srv/nowhere --listen 0.0.0.0:8080
  nowhere serve /srv/nowhere --listen 0.0.0.0:80 --kernel vmlinuz --initrd initrd.img \
      --boot-default debian --boot-append console=ttyS0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(args[0], o) },
	}
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	cmd.Flags().BoolVar(&o.quiet, "quiet", false, "no access log")
	f := cmd.Flags()
	f.StringVar(&o.menu.Kernel, "kernel", "", "boot menu: serve this kernel (a bzImage) as /boot/vmlinuz (default: the store's boot/vmlinuz)")
	f.StringVar(&o.menu.Initrd, "initrd", "", "boot menu: serve this nowhere initramfs as /boot/initrd.img (default: the store's boot/initrd.img)")
	f.StringVar(&o.menu.Default, "boot-default", "", "boot menu: the default image (default: the first by name)")
	durationVar(f, &o.menu.Timeout, "boot-timeout", bootmenu.DefaultTimeout, "boot menu: boot the default after this long without a choice")
	f.StringVar(&o.menu.URL, "boot-url", "", "boot menu: this server's base URL as the machines reach it (default: from each request's Host header)")
	f.StringArrayVar(&o.menu.Mirrors, "boot-mirror", nil, "boot menu: another base URL of this store (nowhere.mirror=, repeatable)")
	f.StringVar(&o.menu.Append, "boot-append", "", "boot menu: more kernel command line on every entry (console=ttyS0, nowhere.cache=/dev/sda, ...)")
	return cmd
}

func runServe(dir string, o serveOptions) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("store %s: %w", dir, unwrapPathError(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("store %s: not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("store %s: %w", dir, unwrapPathError(err))
	}
	defer root.Close()
	// The menu is on when asked for (then it must work) or when the store has the boot files.
	menuErr := bootmenu.Check(dir, o.menu)
	menu := menuErr == nil
	if asked := o.menu.Kernel != "" || o.menu.Initrd != "" || o.menu.Default != ""; asked && menuErr != nil {
		return menuErr
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	h := server.Handler(root)
	if menu {
		h = bootmenu.Handler(dir, h, o.menu)
	}
	if !o.quiet {
		access := log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
		h = server.AccessLog(h, access.Printf)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	// Catch signals before anyone can know we serve: a SIGTERM that arrived in between
	// would kill the process instead of shutting it down gracefully.
	sigs := interrupted()
	fmt.Printf("serving %s on http://%s\n", dir, ln.Addr())
	if menu {
		fmt.Printf("boot menu: http://%s%s\n", ln.Addr(), bootmenu.ScriptPath)
	}

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case sig := <-sigs:
		logf("%s: finishing requests in flight, then exiting", sig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
