-- Retention (docs/security.md §6): the sweep finds what is old by
-- these indexes instead of reading every claim.
-- Failed claims that still hold a token and secret, by age: their values are
-- erased after CLAIMSVC_FAILED_SECRET_RETENTION.
CREATE INDEX IF NOT EXISTS claims_failed_with_secrets ON claims (updated_at) WHERE status = 'failed' AND token IS NOT NULL;
-- Final claims by age: purged after CLAIMSVC_CLAIM_RETENTION.
CREATE INDEX IF NOT EXISTS claims_final_by_age ON claims (updated_at) WHERE status <> 'pending';
-- Idempotency-Keys by age: forgotten after CLAIMSVC_IDEMPOTENCY_KEY_RETENTION.
CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created_at);
