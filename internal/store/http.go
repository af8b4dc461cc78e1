package store

import (
	"context"
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
}

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

// NewHTTP returns a store rooted at base (http or https).
func NewHTTP(base string, client *http.Client) (*HTTP, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("store URL %q: want http://HOST/PATH or https://HOST/PATH", base)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawQuery, u.Fragment = "", ""
	if client == nil {
		client = DefaultClient
	}
	return &HTTP{base: u, client: client}, nil
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
	return h.get(ctx, ChunkPath(ref.ID), limit)
}

func (h *HTTP) File(ctx context.Context, name string, max int64) ([]byte, error) {
	return h.get(ctx, name, max)
}

func (h *HTTP) get(ctx context.Context, name string, max int64) ([]byte, error) {
	u := h.URL(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
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
	if n := resp.ContentLength; n >= 0 {
		// The usual case (a static file): read the body straight into a buffer of its size,
		// with no intermediate copy buffer.
		buf := make([]byte, n)
		got, err := io.ReadFull(resp.Body, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: got %d of %d bytes", u, got, n)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, cleanNetError(err))
		}
		return buf, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, cleanNetError(err))
	}
	if int64(len(b)) > max {
		return nil, &TooLargeError{What: u, Limit: max}
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
