package pxe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/pin/tftp/v3"
)

// TFTPPort is TFTP's port.
const TFTPPort = 69

// maxTransfers bounds the TFTP transfers in flight (each holds one file in memory).
const maxTransfers = 16

// TFTP is a read-only TFTP server of Files: exactly the names it lists (a leading "/"
// is ignored, as some firmware sends one), nothing else, no writes.
type TFTP struct {
	srv  *tftp.Server
	conn *net.UDPConn
	sem  chan struct{}
	done chan error
}

// ListenTFTP binds TFTP on addr (ADDR:69) for files; logf reports each transfer (nil:
// silent).
func ListenTFTP(addr string, files *Files, logf func(format string, args ...any)) (*TFTP, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("tftp: %w", err)
	}
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil, fmt.Errorf("tftp: listen %s: %w", addr, err)
	}
	t := &TFTP{conn: conn, sem: make(chan struct{}, maxTransfers), done: make(chan error, 1)}
	read := func(name string, rf io.ReaderFrom) error {
		peer := "?"
		if ot, ok := rf.(tftp.OutgoingTransfer); ok {
			ra := ot.RemoteAddr()
			peer = ra.IP.String()
		}
		select {
		case t.sem <- struct{}{}:
			defer func() { <-t.sem }()
		default:
			logf("tftp: %s read %q: refused, %d transfers in flight", peer, name, maxTransfers)
			return errors.New("server busy")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rd, _, ok, err := files.open(ctx, strings.TrimPrefix(name, "/"))
		if !ok {
			logf("tftp: %s read %q: refused, not a file this server serves", peer, name)
			return errors.New("file not found")
		}
		if err != nil {
			logf("tftp: %s read %q: %v", peer, name, err)
			return errors.New("file unavailable")
		}
		if ot, ok := rf.(tftp.OutgoingTransfer); ok {
			ot.SetSize(rd.Size())
		}
		start := time.Now()
		n, err := rf.ReadFrom(rd)
		if err != nil {
			logf("tftp: %s read %s: %v after %d bytes", peer, name, err, n)
			return err
		}
		logf("tftp: %s read %s: %d bytes in %.1f s", peer, name, n, time.Since(start).Seconds())
		return nil
	}
	t.srv = tftp.NewServer(read, nil) // no write handler: writes are refused
	t.srv.SetTimeout(5 * time.Second)
	t.srv.SetRetries(5)
	return t, nil
}

// Addr is where the server listens.
func (t *TFTP) Addr() *net.UDPAddr { return t.conn.LocalAddr().(*net.UDPAddr) }

// Serve serves until Close.
func (t *TFTP) Serve() error { return t.srv.Serve(t.conn) }

// Close stops the server (transfers in flight end with it).
func (t *TFTP) Close() {
	t.conn.Close() // in case Serve never ran
	t.srv.Shutdown()
}
