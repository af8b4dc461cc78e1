package main

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/netutil"
)

// A client that sends a request and never reads the answer is dropped after the write
// timeout: the handler's writes fail instead of blocking forever.
func TestServeDropsClientThatNeverReads(t *testing.T) {
	l := defaultServeLimits
	l.write = 300 * time.Millisecond
	werr := make(chan error, 1)
	big := bytes.Repeat([]byte("x"), 1<<20)
	srv := l.server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 256; i++ { // 256 MiB: far more than socket buffers hold
			if _, err := w.Write(big); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(netutil.LimitListener(ln, l.conns))
	defer srv.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /x HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-werr:
		if err == nil {
			t.Fatal("the whole answer was written to a client that never reads")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client that never reads still held the server after 10s (write timeout 300ms)")
	}
}

func TestServeLimitsCheck(t *testing.T) {
	if err := defaultServeLimits.check(); err != nil {
		t.Fatal(err)
	}
	l := defaultServeLimits
	l.conns = 0
	if err := l.check(); err == nil || !strings.Contains(err.Error(), "--max-conns") {
		t.Fatalf("--max-conns 0: %v", err)
	}
	l = defaultServeLimits
	l.write = 0
	if err := l.check(); err == nil || !strings.Contains(err.Error(), "--write-timeout") {
		t.Fatalf("--write-timeout 0: %v", err)
	}
}
