// Package metrics serves a process's Prometheus metrics over HTTP: the mirror set's and
// the disk cache's (Store, their store.Observer), the image reader's, and Go's runtime and process
// collectors. `nowhere mount --metrics ADDR` and the root daemon (nowhere.metrics=ADDR on
// the kernel command line) share it, so both export the same names (docs/mirrors.md,
// "Observability").
package metrics

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nowhere-boot/nowhere/internal/image"
)

// Path is where the metrics are served.
const Path = "/metrics"

// Server serves a registry's metrics at http://Addr()/metrics.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Serve listens on addr (HOST:PORT; port 0 picks a free one, which Addr reports) and
// serves reg's metrics, with Go's runtime and process collectors added, until Close or
// the process ends. The address is the caller's choice; the docs use loopback, as the
// metrics name the mirrors a machine uses.
func Serve(addr string, reg *prometheus.Registry) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	// ContinueOnError: a collector that cannot read something (the root daemon's /proc is
	// gone after switch_root) must not take the other metrics down with it.
	mux.Handle(Path, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the address of the metrics, http://ADDR/metrics.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + Path }

// Close stops serving.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// RegisterReader exports the image reader's counters.
func RegisterReader(reg prometheus.Registerer, r *image.Reader) {
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
	counter("nowhere_zero_copy_reads_total", "Reads answered straight from the memory holding the chunks (one writev to FUSE, no copy).", func(s image.StatsSnapshot) int64 { return s.ZeroCopy })
	counter("nowhere_read_errors_total", "Reads that failed.", func(s image.StatsSnapshot) int64 { return s.Errors })
	counter("nowhere_memory_cache_hits_total", "Chunks served from memory.", func(s image.StatsSnapshot) int64 { return s.Hits })
	counter("nowhere_memory_cache_misses_total", "Chunks not in memory.", func(s image.StatsSnapshot) int64 { return s.Misses })
}
