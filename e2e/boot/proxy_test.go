package boot

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// forwardProxy is an HTTP forward proxy on a free loopback port, for a guest that boots
// with nowhere.proxy=: the guest's relay leads to it, not to the store, and the image's
// URL names a host (origin) that only the proxy knows. It answers proxy requests
// (absolute URLs, as clients send them to a proxy) for that host by forwarding them to
// the store server at to, refuses every other request, and keeps both lists.
type forwardProxy struct {
	addr   string
	origin string
	mu     sync.Mutex
	seen   []string // "METHOD URL" of the requests it forwarded, in order
	bad    []string // "METHOD REQUEST-URI Host" of the ones it refused
}

// startProxy starts the proxy; it is closed when the test ends.
func startProxy(t *testing.T, origin, to string) *forwardProxy {
	t.Helper()
	p := &forwardProxy{origin: origin}
	target := &url.URL{Scheme: "http", Host: to}
	fwd := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) { // the store is down
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		if !r.URL.IsAbs() || r.URL.Host != origin {
			p.bad = append(p.bad, r.Method+" "+r.RequestURI+" "+r.Host)
			p.mu.Unlock()
			http.Error(w, "this proxy forwards only proxy requests for http://"+origin, http.StatusForbidden)
			return
		}
		p.seen = append(p.seen, r.Method+" "+r.URL.String())
		p.mu.Unlock()
		fwd.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// requests returns the forwarded requests whose URL path starts with prefix, and the
// refused ones.
func (p *forwardProxy) requests(prefix string) (forwarded, refused []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.seen {
		if strings.Contains(s, " http://"+p.origin+prefix) {
			forwarded = append(forwarded, s)
		}
	}
	return forwarded, append([]string(nil), p.bad...)
}
