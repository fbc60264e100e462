// Package metrics defines claimsvc's Prometheus metrics on a private registry
// (never the global one, so tests can build many servers in one process).
// Labels are bounded enums and route patterns: never a token or a secret.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every metric claimsvc exports.
type Metrics struct {
	Registry *prometheus.Registry

	ClaimsAccepted  *prometheus.CounterVec   // outcome: created, replayed, conflict, invalid, unavailable, rate_limited, error
	Deliveries      *prometheus.CounterVec   // outcome: delivered, rejected, retry, failed, released
	DeliveryLatency prometheus.Histogram     // accepted → PUBACK
	AttemptDuration *prometheus.HistogramVec // one MQTT attempt, by outcome
	InFlight        prometheus.Gauge         // MQTT attempts under way
	Pending         prometheus.Gauge         // pending claims in the database
	OldestPending   prometheus.Gauge         // age of the oldest pending claim, seconds
	HTTPDuration    *prometheus.HistogramVec // route (pattern), method, code
	Sec             Security                 // security.go
}

// New registers claimsvc's metrics, plus Go and process collectors, on a new
// registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		ClaimsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claimsvc_claims_accepted_total",
			Help: "Claim requests by outcome: created (stored), replayed (an earlier claim answered), conflict, invalid, unavailable (database down or too many batches), rate_limited (a batch item over the per-device limit), error.",
		}, []string{"outcome"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claimsvc_deliveries_total",
			Help: "Delivery attempts by outcome: delivered (PUBACK), rejected (CONNACK 4/5), retry (transient error), failed (gave up), released (stopped before sending).",
		}, []string{"outcome"}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "claimsvc_delivery_latency_seconds",
			Help:    "Time from accepting a claim to ThingsBoard's PUBACK.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400},
		}),
		AttemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "claimsvc_mqtt_attempt_seconds",
			Help:    "Duration of one MQTT delivery attempt (connect, publish, PUBACK), by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"outcome"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "claimsvc_mqtt_inflight",
			Help: "MQTT delivery attempts under way in this process.",
		}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "claimsvc_pending_claims",
			Help: "Claims stored but not yet delivered (all replicas).",
		}),
		OldestPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "claimsvc_oldest_pending_age_seconds",
			Help: "Age of the oldest pending claim; 0 when none is pending.",
		}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "claimsvc_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method", "code"}),
	}
	r.MustRegister(m.ClaimsAccepted, m.Deliveries, m.DeliveryLatency, m.AttemptDuration, m.InFlight,
		m.Pending, m.OldestPending, m.HTTPDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Sec = newSecurity(r)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
