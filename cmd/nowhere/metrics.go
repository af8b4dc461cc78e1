package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nowhere-boot/nowhere/internal/image"
)

// serveMetrics serves reg's metrics at http://addr/metrics until the process exits.
// The address is the user's choice; the examples and docs use loopback, as metrics
// name the mirrors a machine uses.
func serveMetrics(addr string, reg *prometheus.Registry) (net.Addr, error) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr(), nil
}

// registerReaderMetrics exports the image reader's counters.
func registerReaderMetrics(reg *prometheus.Registry, r *image.Reader) {
	gauge := func(name, help string, v func(image.StatsSnapshot) int64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(v(r.Snapshot())) }))
	}
	counter := func(name, help string, v func(image.StatsSnapshot) int64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(r.Snapshot())) }))
	}
	gauge("nowhere_reads_waiting", "Reads waiting for a chunk right now.", func(s image.StatsSnapshot) int64 { return s.Waiting })
	counter("nowhere_reads_total", "Reads of the image.", func(s image.StatsSnapshot) int64 { return s.Reads })
	counter("nowhere_read_bytes_total", "Bytes read from the image.", func(s image.StatsSnapshot) int64 { return s.ReadBytes })
	counter("nowhere_read_errors_total", "Reads that failed.", func(s image.StatsSnapshot) int64 { return s.Errors })
	counter("nowhere_memory_cache_hits_total", "Chunks served from memory.", func(s image.StatsSnapshot) int64 { return s.Hits })
	counter("nowhere_memory_cache_misses_total", "Chunks not in memory.", func(s image.StatsSnapshot) int64 { return s.Misses })
}
