package rootd

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// attemptTimeout bounds one chunk request to one mirror, so a server that stalls mid-body
// passes the request on instead of holding the root.
const attemptTimeout = 60 * time.Second

// failover reads from the mirror that answered last and moves to the next one when it
// fails. It is the boot's minimal mirror set: ranking, hedging and fail-back belong to a
// full mirror set, which replaces it behind the same store.Store interface.
type failover struct {
	srcs []store.Store
	cur  atomic.Int32
	log  *bootlog.Log
}

func newFailover(srcs []store.Store, log *bootlog.Log) store.Store {
	if len(srcs) == 1 {
		return srcs[0]
	}
	return &failover{srcs: srcs, log: log}
}

func (f *failover) String() string {
	var s []string
	for _, x := range f.srcs {
		s = append(s, x.String())
	}
	return strings.Join(s, ",")
}

func (f *failover) try(ctx context.Context, fn func(context.Context, store.Store) error) error {
	start := int(f.cur.Load())
	var errs []error
	for i := range f.srcs {
		n := (start + i) % len(f.srcs)
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := fn(actx, f.srcs[n])
		cancel()
		if err == nil {
			if n != start && f.cur.CompareAndSwap(int32(start), int32(n)) {
				f.log.Printf("now reading from %s (%s failed: %v)", f.srcs[n], f.srcs[start], errs[0])
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, err)
	}
	return joinErrors(errs)
}

func (f *failover) Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	var out []byte
	err := f.try(ctx, func(ctx context.Context, s store.Store) error {
		var err error
		out, err = s.Chunk(ctx, ref)
		return err
	})
	return out, err
}

func (f *failover) File(ctx context.Context, name string, max int64) ([]byte, error) {
	var out []byte
	err := f.try(ctx, func(ctx context.Context, s store.Store) error {
		var err error
		out, err = s.File(ctx, name, max)
		return err
	})
	return out, err
}

// joinErrors keeps messages on one line (the console log is line by line).
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	var s []string
	for _, e := range errs {
		s = append(s, e.Error())
	}
	return errors.New(strings.Join(s, "; "))
}

// newHTTPClient returns the client for the mirrors. Host names are resolved with the name
// servers the network configuration gave, asked directly: the daemon must not read
// /etc/resolv.conf or /etc/hosts, which are gone from its root after switch_root (and the
// root it serves is never its to read).
func newHTTPClient(dns []string) *http.Client {
	t := store.NewTransport()
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if len(dns) > 0 {
		var next atomic.Uint32
		d.Resolver = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				server := dns[int(next.Add(1))%len(dns)]
				return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, net.JoinHostPort(server, "53"))
			},
		}
	}
	t.DialContext = d.DialContext
	return &http.Client{Transport: t}
}
