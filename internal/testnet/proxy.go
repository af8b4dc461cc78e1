package testnet

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a TCP relay that adds a round-trip time: every byte is held RTT/2 on its way
// up and RTT/2 on its way down, and a new connection's first byte is held one RTT more,
// for the TCP handshake a real path would cost (the client's connection to the proxy is
// local and instant). Data is not held back otherwise: the delay line is as deep as the
// link needs, so bandwidth is whatever the path behind it allows.
type Proxy struct {
	ln     net.Listener
	dial   func(ctx context.Context) (net.Conn, error)
	rtt    time.Duration
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	conns, up, down, segments atomic.Int64
	minHold                   atomic.Int64 // nanoseconds; shortest time a byte was held
}

// ProxyStats are a Proxy's counters.
type ProxyStats struct {
	Conns     int64         // connections relayed
	BytesUp   int64         // client to server
	BytesDown int64         // server to client
	Segments  int64         // reads relayed (each held)
	MinHold   time.Duration // the shortest hold of any segment: at least RTT/2 when the proxy works
}

// NewProxy relays each connection accepted on ln to a connection dial makes, with rtt added.
func NewProxy(ln net.Listener, rtt time.Duration, dial func(ctx context.Context) (net.Conn, error)) *Proxy {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, dial: dial, rtt: rtt, ctx: ctx, cancel: cancel}
	p.minHold.Store(int64(time.Hour))
	p.wg.Add(1)
	go p.serve()
	return p
}

// ProxyTo starts a Proxy listening on 127.0.0.1 inside client's namespace and connecting,
// from the same namespace (so through client's link), to addr.
func ProxyTo(client *Host, addr string, rtt time.Duration) (*Proxy, error) {
	ln, err := client.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return NewProxy(ln, rtt, func(ctx context.Context) (net.Conn, error) {
		return client.Dial(ctx, "tcp", addr)
	}), nil
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// RTT is the round-trip time the proxy adds.
func (p *Proxy) RTT() time.Duration { return p.rtt }

// Stats returns the counters.
func (p *Proxy) Stats() ProxyStats {
	s := ProxyStats{Conns: p.conns.Load(), BytesUp: p.up.Load(), BytesDown: p.down.Load(), Segments: p.segments.Load()}
	if s.Segments > 0 {
		s.MinHold = time.Duration(p.minHold.Load())
	}
	return s
}

// Close stops accepting and ends every relayed connection.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

func (p *Proxy) relay(client net.Conn) {
	accepted := time.Now()
	defer client.Close()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	server, err := p.dial(ctx)
	cancel()
	if err != nil {
		return
	}
	defer server.Close()
	stop := context.AfterFunc(p.ctx, func() { client.Close(); server.Close() })
	defer stop()
	done := make(chan bool, 2)
	go func() { done <- p.pipe(server, client, accepted.Add(p.rtt), &p.up) }()
	go func() { done <- p.pipe(client, server, time.Time{}, &p.down) }()
	if clean := <-done; !clean { // a reset or a failed write: end the other direction too
		client.Close()
		server.Close()
	}
	<-done
}

// segment is one read, held until due.
type segment struct {
	data []byte
	read time.Time
	due  time.Time
	eof  bool
}

// pipe copies src to dst through a delay line of RTT/2; nothing leaves before notBefore. It
// reports whether src ended cleanly (EOF, passed on as a half-close).
func (p *Proxy) pipe(dst, src net.Conn, notBefore time.Time, count *atomic.Int64) bool {
	oneWay := p.rtt / 2
	line := make(chan segment, 4096)
	go func() {
		defer close(line)
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			now := time.Now()
			due := now.Add(oneWay)
			if due.Before(notBefore) {
				due = notBefore.Add(oneWay)
			}
			if n > 0 {
				line <- segment{data: append([]byte(nil), buf[:n]...), read: now, due: due}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					line <- segment{eof: true, read: now, due: due}
				}
				return
			}
		}
	}()
	clean := false
	for s := range line {
		if d := time.Until(s.due); d > 0 {
			time.Sleep(d)
		}
		if s.eof {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			clean = true
			continue
		}
		hold := time.Since(s.read)
		if _, err := dst.Write(s.data); err != nil {
			src.Close() // unblock the reader; the connection is over
			for range line {
			}
			return false
		}
		count.Add(int64(len(s.data)))
		p.segments.Add(1)
		for {
			m := p.minHold.Load()
			if int64(hold) >= m || p.minHold.CompareAndSwap(m, int64(hold)) {
				break
			}
		}
	}
	return clean
}
