package vm

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nowhere-boot/nowhere/internal/server"
)

// Counts is what a store server sent.
type Counts struct {
	Requests, Bytes           int64
	ChunkRequests, ChunkBytes int64
}

// Server serves a store directory on a free loopback port and counts what it sends.
type Server struct {
	Addr string // host:port on 127.0.0.1
	srv  *http.Server
	n    struct{ reqs, bytes, creqs, cbytes atomic.Int64 }
}

// Serve starts a server for the store in dir on a free loopback port. logf, when set, gets
// one line per request.
func Serve(dir string, logf func(string, ...any)) (*Server, error) {
	return ServeAt(dir, "127.0.0.1:0", logf)
}

// ServeAt is Serve on a given address.
func ServeAt(dir, addr string, logf func(string, ...any)) (*Server, error) {
	return ServeWith(dir, addr, logf, nil)
}

// ServeWith is ServeAt with the store's handler wrapped by wrap (nil: as it is), for
// servers that answer more than the store's files (the boot menu).
func ServeWith(dir, addr string, logf func(string, ...any), wrap func(http.Handler) http.Handler) (*Server, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		root.Close()
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String()}
	var h http.Handler = server.Handler(root)
	if wrap != nil {
		h = wrap(h)
	}
	if logf != nil {
		h = server.AccessLog(h, logf)
	}
	s.srv = &http.Server{Handler: s.count(h), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		_ = s.srv.Serve(ln)
		root.Close()
	}()
	return s, nil
}

// Counts returns the counters so far.
func (s *Server) Counts() Counts {
	return Counts{s.n.reqs.Load(), s.n.bytes.Load(), s.n.creqs.Load(), s.n.cbytes.Load()}
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func (s *Server) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		s.n.reqs.Add(1)
		s.n.bytes.Add(cw.n)
		if strings.HasPrefix(r.URL.Path, "/chunks/") {
			s.n.creqs.Add(1)
			s.n.cbytes.Add(cw.n)
		}
	})
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// Relay copies one connection between stdin/stdout (qemu's guestfwd) and addr: qemu
// starts one relay per guest connection. It returns when the server closes the
// connection, or when the guest has closed its side and the server has finished answering.
func Relay(addr string, stdin io.Reader, stdout io.Writer) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	back := make(chan error, 1)
	go func() {
		_, err := io.Copy(stdout, conn)
		back <- err
	}()
	forth := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stdin)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // the guest is done sending; let the answer finish
		}
		forth <- err
	}()
	select {
	case err := <-back:
		return err
	case <-forth:
		return <-back
	}
}
