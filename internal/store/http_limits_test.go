package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A mirror under an attacker's control answers at once, then trickles the body.
func TestHTTPAbandonsTricklingResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		for i := 0; i < 200; i++ { // bounded: 20 s at most
			if _, err := w.Write(make([]byte, 10)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(srv.Close)
	h, err := NewHTTPWith(srv.URL, HTTPOptions{MinRate: 1024, RateWindow: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = h.File(context.Background(), "images/x/1.index", 2<<20)
	var slow *SlowError
	if !errors.As(err, &slow) || !strings.Contains(err.Error(), "below the minimum of 1024 bytes/s (slow retrieval)") {
		t.Fatalf("got %v", err)
	}
	t.Logf("abandoned after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

// A response that keeps up the minimum rate but never ends stops at the request deadline.
func TestHTTPRequestDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 400; i++ { // bounded: 20 s at most
			if _, err := w.Write(make([]byte, 1024)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(srv.Close)
	h, err := NewHTTPWith(srv.URL, HTTPOptions{RequestTimeout: 700 * time.Millisecond, MinRate: 1024, RateWindow: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.File(context.Background(), "images/x/latest", 100<<20)
	var slow *SlowError
	if !errors.As(err, &slow) || !strings.Contains(err.Error(), "no complete response within 700ms (request deadline)") {
		t.Fatalf("got %v", err)
	}
}

// Endless data: a body without a declared length is cut at the caller's limit.
func TestHTTPEndlessDataStopsAtLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for i := 0; i < 10000; i++ { // 320 MB at most, far past the limit
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	h, _ := NewHTTPWith(srv.URL, HTTPOptions{})
	_, err := h.File(context.Background(), "images/x/latest", 4<<10)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 4<<10 {
		t.Fatalf("got %v", err)
	}
}

// Slow but steady is not hostile: a body above the minimum rate arrives whole.
func TestHTTPSlowButSteadyResponseArrives(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "8000")
		for i := 0; i < 8; i++ {
			w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond) // 20 KB/s against a 1 KB/s minimum
		}
	}))
	t.Cleanup(srv.Close)
	h, _ := NewHTTPWith(srv.URL, HTTPOptions{MinRate: 1024, RateWindow: 100 * time.Millisecond})
	b, err := h.File(context.Background(), "f", 1<<20)
	if err != nil || len(b) != 8000 {
		t.Fatalf("got %d bytes, %v", len(b), err)
	}
}

func TestHTTPSWithCustomCA(t *testing.T) {
	caPEM, cert := testCA(t, "127.0.0.1")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("over tls"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// The system roots do not know the test CA.
	plain, _ := NewHTTPWith(srv.URL, HTTPOptions{})
	if _, err := plain.File(context.Background(), "f", 1<<10); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}
	client, err := NewClient(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := NewHTTPWith(srv.URL, HTTPOptions{Client: client})
	b, err := h.File(context.Background(), "f", 1<<10)
	if err != nil || string(b) != "over tls" {
		t.Fatalf("with the CA: %q, %v", b, err)
	}
	if _, err := NewClient([]byte("not pem")); err == nil {
		t.Fatal("NewClient accepted a file without certificates")
	}
}

// testCA makes a CA and a server certificate for host signed by it.
func testCA(t *testing.T, host string) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nowhere test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(host)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}
}
