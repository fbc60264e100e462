-- console_logouts: console sessions ended by their logout before they
-- expired. A session is a signed cookie that no server keeps; without this a
-- cookie copied before the logout would open the console until its expiry
-- (8 h). A row lasts until the session would have expired; logouts delete
-- the expired ones.
CREATE TABLE IF NOT EXISTS console_logouts (
    nonce      bytea       PRIMARY KEY CHECK (length(nonce) = 16),
    expires_at timestamptz NOT NULL
);
