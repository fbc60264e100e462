// Package retention runs the store's retention sweep on a timer
// (docs/security.md §6): failed claims lose their token and secret,
// old final claims and Idempotency-Keys are deleted. Every replica runs it;
// the store lets one sweep at a time.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/store"
)

// Sweeper is what the runner needs of the store.
type Sweeper interface {
	Sweep(ctx context.Context, r store.Retention) (store.SweepResult, error)
}

// Config says what to keep how long, and how often to sweep.
type Config struct {
	store.Retention
	Interval   time.Duration // between sweeps
	FirstAfter time.Duration // the first sweep, after the start (0: a minute, or Interval if shorter)
}

// Run sweeps every Interval until ctx ends.
func Run(ctx context.Context, sw Sweeper, cfg Config, log *slog.Logger, m *metrics.Metrics) {
	if cfg.FailedSecrets <= 0 && cfg.Claims <= 0 && cfg.IdempotencyKeys <= 0 {
		log.Info("retention is off: failed claims keep their token and secret, and nothing is purged")
		return
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	first := cfg.FirstAfter
	if first <= 0 {
		first = min(time.Minute, cfg.Interval)
	}
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		Once(ctx, sw, cfg.Retention, log, m)
		t.Reset(cfg.Interval)
	}
}

// Once runs one sweep, logs and counts what it did.
func Once(ctx context.Context, sw Sweeper, r store.Retention, log *slog.Logger, m *metrics.Metrics) {
	res, err := sw.Sweep(ctx, r)
	m.Sec.Retention.WithLabelValues("erased_secrets").Add(float64(res.ErasedSecrets))
	m.Sec.Retention.WithLabelValues("purged_claims").Add(float64(res.PurgedClaims))
	m.Sec.Retention.WithLabelValues("purged_idempotency_keys").Add(float64(res.PurgedIdemKeys))
	switch {
	case err != nil && ctx.Err() == nil:
		log.Warn("retention sweep failed; the next one goes on", "err", err)
	case res.Skipped:
		log.Debug("retention sweep skipped: another replica is sweeping")
	case res.ErasedSecrets+res.PurgedClaims+res.PurgedIdemKeys > 0 || res.StoppedEarly:
		log.Info("retention sweep", "erased_secrets", res.ErasedSecrets, "purged_claims", res.PurgedClaims,
			"purged_idempotency_keys", res.PurgedIdemKeys, "more_left", res.StoppedEarly, "took", res.Took.Round(time.Millisecond))
	}
}
