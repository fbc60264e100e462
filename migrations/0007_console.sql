-- The operator console (internal/console) and the factory tools
-- (docs/design.md §12).
--
-- actor: who asked for the change an event records, when it was a person
-- through the console: "console", or "console:" and the first 8 hex digits of
-- the SHA-256 of the API key they logged in with (the digest configured in
-- CLAIMSVC_API_KEYS, never the key). NULL: the API or claimsvc itself.
ALTER TABLE claim_events ADD COLUMN actor text CHECK (char_length(actor) BETWEEN 1 AND 64);

-- The console's overview: the latest outcomes without walking the whole
-- audit trail (a few percent of the events, so the index stays small).
CREATE INDEX claim_events_outcomes ON claim_events (id DESC)
    WHERE kind IN ('delivered', 'rejected', 'failed', 'claimed', 'expired');

-- The console's filters, newest first: a token hint as shown ("DHT1…EN") or
-- its first characters, and the start of a device name in any case. Byte-wise
-- operator classes, so that a prefix (LIKE 'x%') uses them whatever the
-- database's collation. The device name index replaces 0004's, which no
-- query could use for a prefix.
CREATE INDEX claims_by_token_hint ON claims (token_hint text_pattern_ops, created_at DESC, id DESC);
DROP INDEX claims_by_device_name;
CREATE INDEX claims_by_device_name ON claims (lower(device_name) text_pattern_ops, created_at DESC)
    WHERE device_name IS NOT NULL;

-- The console's session signing key: made once (crypto/rand, by the first
-- replica that needs it) and shared by every replica, so a session works on
-- all of them and across restarts.
CREATE TABLE console_keys (
    name       text        PRIMARY KEY,
    key        bytea       NOT NULL CHECK (length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- CSV imports started from the console: what the progress page shows, on
-- any replica. claim_ids are the claims the import created or was answered
-- with (replays), in row order; problems the rows that failed, as
-- [{"line": N, "problem": "…"}] (at most 1,000).
CREATE TABLE imports (
    id          uuid        PRIMARY KEY,
    file_name   text        NOT NULL CHECK (char_length(file_name) <= 255),
    actor       text        NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 64),
    rows_total  integer     NOT NULL CHECK (rows_total >= 0),
    rows_done   integer     NOT NULL DEFAULT 0,
    created     integer     NOT NULL DEFAULT 0,
    replayed    integer     NOT NULL DEFAULT 0,
    failed      integer     NOT NULL DEFAULT 0,
    claim_ids   uuid[]      NOT NULL DEFAULT '{}',
    problems    jsonb       NOT NULL DEFAULT '[]',
    state       text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'stopped')),
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX imports_by_start ON imports (started_at DESC);
