package metrics_test

import (
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nowhere-boot/nowhere/internal/metrics"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// TestServeExportsTheRegistryOverHTTP: the metrics of a registry, plus Go's runtime
// collectors, answer a real scrape over loopback at the address Serve reports.
func TestServeExportsTheRegistryOverHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.NewStore(reg)
	s, err := metrics.Serve("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || strings.HasSuffix(s.URL(), ":0/metrics") {
		t.Errorf("URL = %q, want the bound loopback port", s.URL())
	}
	m := testutil.Scrape(t, s.URL())
	for _, name := range []string{"nowhere_failovers_total", "nowhere_cache_hits_total", "nowhere_fetches_waiting", "go_goroutines"} {
		if m[name] == nil {
			t.Errorf("scrape lacks %s", name)
		}
	}
}

// TestServeRefusesABusyOrBadAddress: the caller hears why it cannot serve (and decides
// whether that is fatal: mount fails, the root daemon goes on).
func TestServeRefusesABusyOrBadAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, addr := range []string{busy.Addr().String(), "127.0.0.1", "127.0.0.1:http-alt-nope"} {
		if s, err := metrics.Serve(addr, prometheus.NewRegistry()); err == nil {
			s.Close()
			t.Errorf("Serve(%q) succeeded", addr)
		}
	}
}
