-- API keys (prefixed, checksummed, like refresh tokens) and Idempotency-Key records.
-- Timestamps are Unix seconds.

CREATE TABLE api_keys (
    public_id            TEXT PRIMARY KEY NOT NULL,
    client_id            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    secret_hash          TEXT NOT NULL,       -- SHA-256 hex of the current secret
    previous_secret_hash TEXT,                -- the secret before the last roll
    previous_valid_until INTEGER,             -- end of its grace period
    created_at           INTEGER NOT NULL,
    rolled_at            INTEGER,
    revoked_at           INTEGER
);

-- One row per (client, Idempotency-Key): the request it was first used with and the token
-- identity it produced. No token is stored: a replay re-signs the same claims.
CREATE TABLE idempotency_keys (
    client_id    TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,               -- SHA-256 hex of the canonical request
    jti          TEXT NOT NULL REFERENCES access_tokens (jti),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (client_id, idem_key)
);
