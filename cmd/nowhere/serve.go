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

	"github.com/nowhere-boot/nowhere/internal/server"
)

type serveOptions struct {
	listen string
	quiet  bool
}

func newServeCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve DIR",
		Short: "Serve a store read-only over HTTP",
		Long: `Serve makes a store available to clients over plain HTTP: GET and HEAD, Range
requests, ETags, and Cache-Control headers that let proxies and CDNs keep chunks and
versioned indexes for a year. Any static web server (nginx, a CDN) can do the same.`,
		Example: `  nowhere serve ./store
  nowhere serve /srv/nowhere --listen 0.0.0.0:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(args[0], o) },
	}
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	cmd.Flags().BoolVar(&o.quiet, "quiet", false, "no access log")
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
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	h := server.Handler(root)
	if !o.quiet {
		access := log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
		h = server.AccessLog(h, access.Printf)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	// Catch signals before anyone can know we serve: a SIGTERM that arrived in between
	// would kill the process instead of shutting it down gracefully.
	sigs := interrupted()
	fmt.Printf("serving %s on http://%s\n", dir, ln.Addr())

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
