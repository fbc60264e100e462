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

	ClaimsAccepted   *prometheus.CounterVec   // outcome: created, replayed, conflict, invalid, unavailable, rate_limited, error
	Deliveries       *prometheus.CounterVec   // outcome: delivered, rejected, retry, failed, released
	DeliveryLatency  prometheus.Histogram     // accepted → PUBACK
	AttemptDuration  *prometheus.HistogramVec // one MQTT attempt, by outcome
	InFlight         prometheus.Gauge         // MQTT attempts under way
	Pending          prometheus.Gauge         // pending claims in the database
	OldestPending    prometheus.Gauge         // age of the oldest pending claim, seconds
	HTTPDuration     *prometheus.HistogramVec // route (pattern), method, code
	Transitions      *prometheus.CounterVec   // to: claimed, expired, superseded, cancelled (after delivery)
	DependencyUp     *prometheus.GaugeVec     // dependency: database, mqtt, thingsboard_rest
	BrokerUp         prometheus.Gauge         // ThingsBoard's MQTT transport answers
	DBUp             prometheus.Gauge         // the database answers
	TBRequests       *prometheus.CounterVec   // op, outcome: ThingsBoard REST and HTTP device API requests
	DeliveryFailures *prometheus.CounterVec   // delivery, reason: why attempts failed
	Sec              Security                 // security.go
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
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claimsvc_claim_transitions_total",
			Help: "Changes of a delivered claim's status: claimed (a customer has the device), expired, superseded (a newer attribute claim), cancelled (an attribute claim revoked).",
		}, []string{"to"}),
		DependencyUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "claimsvc_dependency_up",
			Help: "1 while a dependency (database, mqtt, thingsboard_rest) answers as this process last saw it, else 0.",
		}, []string{"dependency"}),
		BrokerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "claimsvc_broker_up",
			Help: "1 while ThingsBoard's MQTT transport answers, 0 during an outage this process detected.",
		}),
		TBRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claimsvc_tb_rest_requests_total",
			Help: "Requests to ThingsBoard's REST API and HTTP device API by operation and outcome (ok, not_found, client_error, server_error, unauthorized, unreachable).",
		}, []string{"op", "outcome"}),
	}
	m.DeliveryFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "claimsvc_delivery_failures_total",
		Help: "Failed delivery attempts by delivery and reason: unreachable, connack_1…5, closed_before_puback, puback_timeout, unauthorized, transient, …",
	}, []string{"delivery", "reason"})
	m.DBUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "claimsvc_db_up",
		Help: "1 while the database answers this process (readiness checks, the backlog gauges' refresh), else 0.",
	})
	m.BrokerUp.Set(1)
	m.DBUp.Set(1)
	r.MustRegister(m.ClaimsAccepted, m.Deliveries, m.DeliveryLatency, m.AttemptDuration, m.InFlight,
		m.Pending, m.OldestPending, m.HTTPDuration, m.Transitions, m.DependencyUp, m.BrokerUp, m.TBRequests, m.DeliveryFailures, m.DBUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Sec = newSecurity(r)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
