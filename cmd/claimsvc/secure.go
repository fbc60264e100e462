package main

import (
	"context"
	"log/slog"

	"github.com/claimsvc/claimsvc/internal/config"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/retention"
	"github.com/claimsvc/claimsvc/internal/seal"
	"github.com/claimsvc/claimsvc/internal/store"
)

// announceInsecure says, at every start and in claimsvc_insecure_settings,
// which protections are off (docs/security.md §2 and docs/security.md §8): the
// demo's defaults or an explicit opt-out.
func announceInsecure(log *slog.Logger, cfg config.Config, sealer *seal.Sealer, m *metrics.Metrics) {
	for _, s := range []string{"no_api_keys", "no_data_key"} {
		m.Sec.Insecure.WithLabelValues(s).Set(0)
	}
	why := "CLAIMSVC_INSECURE_NO_API_KEYS=true"
	if cfg.Demo {
		why = "--demo without CLAIMSVC_API_KEYS"
	}
	for _, s := range cfg.Insecure() {
		m.Sec.Insecure.WithLabelValues(s).Set(1)
		switch s {
		case "no_api_keys":
			log.Warn("INSECURE: no API keys ("+why+"): every route is open, anyone who reaches "+cfg.HTTPAddr+
				" can list, cancel and retry claims and read their audit trails", "http_addr", cfg.HTTPAddr)
		case "no_data_key":
			log.Warn("INSECURE: no data key: device tokens and claim secrets are stored sealed with a key published in claimsvc's source, " +
				"i.e. readable by anyone who can read the database; set CLAIMSVC_DATA_KEY")
		}
	}
	if sealer.Keys() > 1 {
		log.Info("data keyring: the first key seals, the others only open; run claimsvc rekey, then drop the old keys", "keys", sealer.Keys())
	}
}

// checkKeys runs the store's start-up check of the keyring: a wrong keyring
// stops the start, claims that do not open (tampered with, or needing
// claimsvc rekey) are only reported, and never stop it.
func checkKeys(ctx context.Context, st *store.Store, log *slog.Logger) error {
	rep, err := st.CheckDataKey(ctx)
	if err != nil {
		return err
	}
	if len(rep.Refused) > 0 {
		log.Error("stored claims whose token or secret does not open (tampered with, or in plain text or an older format): "+
			"they are not sent; run claimsvc rekey, or cancel them", "claims", rep.Refused)
	}
	switch {
	case rep.NotCurrent > 0:
		log.Warn("stored claims are not sealed with the current data key in the current format: run claimsvc rekey",
			"claims", rep.NotCurrent)
	case rep.NotCurrent < 0:
		log.Info("the claims not sealed with the current data key were not counted in time (a large table); claimsvc rekey finds them")
	}
	return nil
}

// retentionConfig is the retention sweep's part of the settings.
func retentionConfig(cfg config.Config) retention.Config {
	return retention.Config{Interval: cfg.RetentionInterval, Retention: store.Retention{
		FailedSecrets: cfg.FailedSecretRetention, Claims: cfg.ClaimRetention, IdempotencyKeys: cfg.IdempotencyKeyRetention,
	}}
}
