-- keel-reference initial schema. Timestamps are Unix seconds.

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY NOT NULL,
    alg             TEXT NOT NULL,
    private_key_der BLOB NOT NULL,          -- PKCS#8 v1
    public_jwk      TEXT NOT NULL,          -- JSON, as published in the JWKS
    state           TEXT NOT NULL CHECK (state IN ('staged', 'active', 'retired')),
    created_at      INTEGER NOT NULL
);

-- Stable subject identifiers: one uuid per principal (`user:NAME` or `client:ID`).
CREATE TABLE subjects (
    principal  TEXT PRIMARY KEY NOT NULL,
    sub        TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- A grant is one issuance chain; for authorization_code grants its id is the refresh family id.
CREATE TABLE grants (
    id         TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('client_credentials', 'authorization_code')),
    client_id  TEXT NOT NULL,
    principal  TEXT NOT NULL,
    username   TEXT,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,  -- SHA-256 hex of the code
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,              -- S256
    scope          TEXT NOT NULL,
    username       TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    grant_id       TEXT REFERENCES grants (id)
);

CREATE TABLE access_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    grant_id   TEXT NOT NULL REFERENCES grants (id),
    client_id  TEXT NOT NULL,
    principal  TEXT NOT NULL,
    username   TEXT,
    scope      TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);

CREATE TABLE refresh_tokens (
    public_id   TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL,                 -- SHA-256 hex of the secret
    grant_id    TEXT NOT NULL REFERENCES grants (id),
    client_id   TEXT NOT NULL,
    principal   TEXT NOT NULL,
    username    TEXT,
    scope       TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER,
    replaced_by TEXT,
    revoked_at  INTEGER
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
