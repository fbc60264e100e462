-- idempotency_keys: every Idempotency-Key a request carried, with the claim
-- that answered it. A key is recorded whether its request created a claim or
-- was answered by an earlier one (a replay under the hold rule), so reusing
-- the key with another request is refused in both cases. Before this, only
-- keys of requests that created a claim were kept (claims.idempotency_key).
CREATE TABLE idempotency_keys (
    key         text        PRIMARY KEY,
    claim_id    uuid        NOT NULL REFERENCES claims (id) ON DELETE CASCADE,
    token_hash  bytea       NOT NULL,  -- the request's device
    fingerprint bytea       NOT NULL,  -- the request's HMAC fingerprint (see claims.fingerprint)
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_by_claim ON idempotency_keys (claim_id);

INSERT INTO idempotency_keys (key, claim_id, token_hash, fingerprint, created_at)
SELECT idempotency_key, id, token_hash, fingerprint, created_at FROM claims WHERE idempotency_key IS NOT NULL;

ALTER TABLE claims DROP COLUMN idempotency_key;
