package rootd

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/metrics"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// daemonMetrics is the daemon's Prometheus endpoint (nowhere.metrics=): the same metrics
// as `nowhere mount --metrics`, served by the same code. Its zero value is no metrics: the
// mirror set and cache then record nothing.
type daemonMetrics struct {
	reg   *prometheus.Registry
	store store.Observer // nil when not served
	srv   *metrics.Server
}

// serveMetrics starts the endpoint the spec asks for, before the index is loaded, so the
// mirrors' requests show while the boot waits for one. The root must not die for
// metrics: when the address cannot be served, one line says why and the daemon goes on
// without them.
func serveMetrics(spec Spec, log *bootlog.Log) daemonMetrics {
	if spec.Metrics == "" {
		return daemonMetrics{}
	}
	reg := prometheus.NewRegistry()
	m := metrics.NewStore(reg)
	srv, err := metrics.Serve(spec.Metrics, reg)
	if err != nil {
		log.Printf("nowhere.metrics=%s: cannot serve metrics (%v): going on without them", spec.Metrics, err)
		return daemonMetrics{}
	}
	log.Printf("metrics at %s", srv.URL())
	return daemonMetrics{reg: reg, store: m, srv: srv}
}

// addReader exports the image reader's counters, once there is a reader.
func (d daemonMetrics) addReader(r *image.Reader) {
	if d.reg != nil {
		metrics.RegisterReader(d.reg, r)
	}
}

// url is where the metrics are served ("" when they are not).
func (d daemonMetrics) url() string {
	if d.srv == nil {
		return ""
	}
	return d.srv.URL()
}
