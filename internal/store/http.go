package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// HTTP is a store served by any static web server (nowhere serve, nginx, a CDN, a proxy).
type HTTP struct {
	base   *url.URL // always ends in "/"
	client *http.Client
	opt    HTTPOptions
}

// HTTPOptions bound what one request may cost, whatever the server does: sizes are bounded
// by the caller's limits, time by a deadline per request and a minimum throughput, so a
// hostile or broken mirror can neither send endless data nor hold a reader forever by
// trickling bytes (slow retrieval). A request cut off is an ordinary failure: the retry
// policy (or the mirror set) tries again.
type HTTPOptions struct {
	// Client makes the requests (nil: DefaultClient; see NewClient for a custom CA).
	Client *http.Client
	// RequestTimeout bounds one request from start to last byte (0: DefaultRequestTimeout,
	// negative: none).
	RequestTimeout time.Duration
	// MinRate is the slowest a response body may arrive, in bytes per second averaged over
	// RateWindow (0: DefaultMinRate, negative: no minimum). A body that ends within one
	// window is never cut off, so small files over slow links are safe.
	MinRate int64
	// RateWindow is how long throughput is averaged over (0: DefaultRateWindow).
	RateWindow time.Duration
}

// Defaults for HTTPOptions: generous enough for a slow link or a loaded mirror, tight
// enough that a stalled or trickling response is abandoned within seconds.
const (
	DefaultRequestTimeout = 2 * time.Minute
	DefaultMinRate        = 1 << 10 // bytes per second
	DefaultRateWindow     = 10 * time.Second
)

// SlowError reports a response abandoned for its pace: below the minimum throughput, or
// past the request deadline.
type SlowError struct {
	URL  string
	What string
}

func (e *SlowError) Error() string { return e.URL + ": " + e.What }

// StatusError is an HTTP answer other than 200 (and other than 404, which is ErrNotFound).
type StatusError struct {
	URL  string
	Code int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d %s", e.URL, e.Code, http.StatusText(e.Code))
}

// NewTransport returns the transport nowhere uses for every mirror: keep-alive with many
// idle connections per host (read-ahead keeps several requests in flight), HTTP/2 where
// the server offers it over TLS, proxies from HTTP_PROXY/HTTPS_PROXY/NO_PROXY, and no
// transparent gzip (chunks are already compressed, and sizes must be exact).
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
}

// DefaultClient is shared by HTTP stores that are given no client.
var DefaultClient = &http.Client{Transport: NewTransport()}

// NewClient returns an HTTP client with nowhere's transport that also trusts the CA
// certificates in caPEM (PEM, one or more) besides the system's roots: for https mirrors
// with a private CA. Integrity never depends on TLS (every byte is verified); TLS adds
// privacy and keeps on-path meddling out.
func NewClient(caPEM []byte) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no PEM certificate in it")
	}
	t := NewTransport()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}, nil
}

// NewHTTP returns a store rooted at base (http or https).
func NewHTTP(base string, client *http.Client) (*HTTP, error) {
	return NewHTTPWith(base, HTTPOptions{Client: client})
}

// NewHTTPWith returns a store rooted at base (http or https) with options.
func NewHTTPWith(base string, opt HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("store URL %q: want http://HOST/PATH or https://HOST/PATH", base)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawQuery, u.Fragment = "", ""
	if opt.Client == nil {
		opt.Client = DefaultClient
	}
	if opt.RequestTimeout == 0 {
		opt.RequestTimeout = DefaultRequestTimeout
	}
	if opt.MinRate == 0 {
		opt.MinRate = DefaultMinRate
	}
	if opt.RateWindow <= 0 {
		opt.RateWindow = DefaultRateWindow
	}
	return &HTTP{base: u, client: opt.Client, opt: opt}, nil
}

func (h *HTTP) String() string { return strings.TrimSuffix(h.base.String(), "/") }

// URL returns the address of a file in the store.
func (h *HTTP) URL(name string) string {
	return h.base.ResolveReference(&url.URL{Path: name}).String()
}

func (h *HTTP) Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	limit := int64(chunk.MaxSize + 1<<16)
	if ref.Stored > 0 {
		limit = int64(ref.Stored)
	}
	return h.get(ctx, ChunkPath(ref.ID), limit, nil)
}

// PeerChunk is Chunk for a peer's cache (peers.go): fetch asks the peer to fetch a chunk
// it lacks from its own sources first.
func (h *HTTP) PeerChunk(ctx context.Context, ref chunk.Ref, fetch bool) ([]byte, error) {
	if !fetch {
		return h.Chunk(ctx, ref)
	}
	limit := int64(chunk.MaxSize + 1<<16)
	if ref.Stored > 0 {
		limit = int64(ref.Stored)
	}
	return h.get(ctx, ChunkPath(ref.ID), limit, http.Header{PeerFetchHeader: {"1"}})
}

func (h *HTTP) File(ctx context.Context, name string, max int64) ([]byte, error) {
	return h.get(ctx, name, max, nil)
}

// PeerFile is File for a peer's share: fetch asks the peer to fetch a file it lacks
// (only its image's index) from its own sources first.
func (h *HTTP) PeerFile(ctx context.Context, name string, max int64, fetch bool) ([]byte, error) {
	if !fetch {
		return h.File(ctx, name, max)
	}
	return h.get(ctx, name, max, http.Header{PeerFetchHeader: {"1"}})
}

func (h *HTTP) get(ctx context.Context, name string, max int64, header http.Header) ([]byte, error) {
	u := h.URL(name)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if d := h.opt.RequestTimeout; d > 0 {
		t := time.AfterFunc(d, func() {
			cancel(&SlowError{URL: u, What: fmt.Sprintf("no complete response within %s (request deadline)", d)})
		})
		defer t.Stop()
	}
	b, err := h.fetch(ctx, cancel, u, max, header)
	if err != nil {
		var slow *SlowError
		if cause := context.Cause(ctx); errors.As(cause, &slow) {
			return nil, slow
		}
	}
	return b, err
}

func (h *HTTP) fetch(ctx context.Context, cancel context.CancelCauseFunc, u string, max int64, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, cleanNetError(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("%s: %w", u, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // keep the connection
		return nil, &StatusError{URL: u, Code: resp.StatusCode}
	case resp.ContentLength > max:
		return nil, &TooLargeError{What: u, Limit: max}
	}
	body := io.Reader(resp.Body)
	if h.opt.MinRate > 0 {
		g := watchRate(u, h.opt.MinRate, h.opt.RateWindow, cancel)
		defer g.stop()
		body = g.count(resp.Body)
	}
	if n := resp.ContentLength; n >= 0 {
		// The usual case (a static file): read the body straight into a buffer of its size,
		// with no intermediate copy buffer.
		buf := make([]byte, n)
		got, err := io.ReadFull(body, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: got %d of %d bytes", u, got, n)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, cleanNetError(err))
		}
		return buf, nil
	}
	return readUnknownLength(u, body, max)
}

// readUnknownLength reads a body sent without a Content-Length (chunked), at most max
// bytes. It reads into pieces that double in size and copies them once into a buffer of
// the exact size, so a file of n bytes peaks at 2n: io.ReadAll grows one buffer by
// re-allocating it, which kept about 2.4 times max (600 MB for an index) alive before a
// too-large answer could be refused.
func readUnknownLength(u string, body io.Reader, max int64) ([]byte, error) {
	var pieces [][]byte
	var total int64
	size := int64(32 << 10)
	for {
		// One byte past max tells a body of exactly max from a larger one.
		p := make([]byte, min(size, max+1-total))
		n, err := io.ReadFull(body, p)
		pieces = append(pieces, p[:n])
		total += int64(n)
		if total > max {
			return nil, &TooLargeError{What: u, Limit: max}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, cleanNetError(err))
		}
		size = min(2*size, 8<<20)
	}
	if len(pieces) == 1 {
		return pieces[0], nil
	}
	b := make([]byte, 0, total)
	for i, p := range pieces {
		b = append(b, p...)
		pieces[i] = nil
	}
	return b, nil
}

// cleanNetError drops *url.Error's repetition of method and URL (our messages name the URL).
func cleanNetError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
