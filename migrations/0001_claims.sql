-- claims: one row per claim. The device token and the claim secret are kept
-- (sealed, see internal/seal) only while the claim may still be sent; they
-- are set to NULL once it is delivered, rejected or cancelled.
CREATE TABLE claims (
    id               uuid        PRIMARY KEY,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'rejected', 'failed', 'cancelled')),
    token_hash       bytea       NOT NULL,          -- SHA-256 of the device token: lookups by device
    token_hint       text        NOT NULL,          -- first 4 + last 2 characters, or '…'
    token            bytea,                         -- sealed token; NULL once final
    secret           bytea,                         -- sealed secret; NULL when absent or final
    has_secret       boolean     NOT NULL,
    duration_ms      bigint      CHECK (duration_ms BETWEEN 1 AND 2592000000),
    fingerprint      bytea       NOT NULL,          -- HMAC(token, secret+duration): "the same request"
    idempotency_key  text        UNIQUE,
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    pending_since    timestamptz NOT NULL DEFAULT now(), -- reset by a retry; MAX_PENDING_AGE counts from here
    next_attempt_at  timestamptz,
    delivered_at     timestamptz,
    lease_owner      uuid,                          -- the dispatcher that holds the claim
    lease_until      timestamptz,                   -- after this the lease may be taken over
    CHECK (status <> 'pending' OR next_attempt_at IS NOT NULL),
    CHECK (status IN ('pending', 'failed') OR (token IS NULL AND secret IS NULL))
);

-- The dispatcher's queue: only pending rows, in due order.
CREATE INDEX claims_due ON claims (next_attempt_at) WHERE status = 'pending';
-- A device's claims, newest first (hold rule, GET /devices/{token}/claims).
CREATE INDEX claims_by_device ON claims (token_hash, created_at DESC);
-- Operators' listing, newest first, optionally by status.
CREATE INDEX claims_by_created ON claims (created_at DESC, id DESC);
CREATE INDEX claims_by_status ON claims (status, created_at DESC, id DESC);

-- claim_events: the append-only audit trail. Never a token or a secret.
CREATE TABLE claim_events (
    id        bigserial   PRIMARY KEY,
    claim_id  uuid        NOT NULL REFERENCES claims (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text        NOT NULL
              CHECK (kind IN ('accepted', 'attempt', 'delivered', 'rejected', 'failed',
                              'cancelled', 'retried', 'lease_expired', 'released')),
    attempt   integer,
    outcome   text,
    detail    text
);
CREATE INDEX claim_events_by_claim ON claim_events (claim_id, id);
