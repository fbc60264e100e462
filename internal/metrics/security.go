package metrics

import "github.com/prometheus/client_golang/prometheus"

// Security holds the metrics of docs/security.md §8: the rejected-token
// budget, the caps on waiters and batches, the opt-outs in effect and the
// retention sweep. Labels are fixed enums.
type Security struct {
	RejectedTokens *prometheus.CounterVec // via: outcome (a claim created without a key was rejected), read (an answer showed an unknown token)
	BudgetRefusals prometheus.Counter     // requests refused (429): the client's rejected-token budget was spent
	Unresolved     prometheus.Gauge       // claims created without a key whose outcome is not known yet
	Waiters        prometheus.Gauge       // Prefer: wait requests being held
	WaitsDeclined  prometheus.Counter     // Prefer: wait answered at once: the cap was reached
	BatchesRefused prometheus.Counter     // batches refused (503): too many at once
	Insecure       *prometheus.GaugeVec   // setting: no_api_keys, no_data_key; 1 while the opt-out is in effect
	Retention      *prometheus.CounterVec // action: erased_secrets, purged_claims, purged_idempotency_keys
}

func newSecurity(r *prometheus.Registry) Security {
	s := Security{
		RejectedTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claimsvc_rejected_tokens_total",
			Help: "Device tokens from callers without an API key that turned out unknown: via=outcome, ThingsBoard rejected a claim they created; via=read, an answer showed them a rejected or unknown token. A burst means someone is guessing tokens.",
		}, []string{"via"}),
		BudgetRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "claimsvc_rejected_token_refusals_total",
			Help: "Requests without an API key refused with 429 because their client IP spent its rejected-token budget (CLAIMSVC_REJECTED_TOKEN_LIMIT).",
		}),
		Unresolved: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "claimsvc_unresolved_claims_without_key",
			Help: "Claims created without an API key in this process whose delivery outcome is not known yet; they count against their client's budget.",
		}),
		Waiters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "claimsvc_http_waiters",
			Help: "Requests holding their answer for Prefer: wait (at most CLAIMSVC_MAX_WAITERS).",
		}),
		WaitsDeclined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "claimsvc_http_waits_declined_total",
			Help: "Prefer: wait requests answered at once because CLAIMSVC_MAX_WAITERS requests were already waiting.",
		}),
		BatchesRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "claimsvc_batches_refused_total",
			Help: "POST /claims:batch requests refused (503) because CLAIMSVC_MAX_BATCHES were being handled for 5 s.",
		}),
		Insecure: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "claimsvc_insecure_settings",
			Help: "1 while an explicit security opt-out (or the demo's default) is in effect: no_api_keys, no_data_key.",
		}, []string{"setting"}),
		Retention: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claimsvc_retention_rows_total",
			Help: "Rows changed by the retention sweep: erased_secrets (failed claims' tokens and secrets), purged_claims, purged_idempotency_keys.",
		}, []string{"action"}),
	}
	r.MustRegister(s.RejectedTokens, s.BudgetRefusals, s.Unresolved, s.Waiters, s.WaitsDeclined, s.BatchesRefused, s.Insecure, s.Retention)
	for _, via := range []string{"outcome", "read"} {
		s.RejectedTokens.WithLabelValues(via) // exported at 0 from the start, for rate() and alerts
	}
	return s
}
