-- Issued tokens (JWT ids), the audit log, and secret rotation.

CREATE TABLE tokens (
    jti        TEXT PRIMARY KEY,
    sub        TEXT NOT NULL,
    access     TEXT NOT NULL,              -- read | write | read_write | admin
    scope      TEXT NOT NULL,              -- JSON array of tags; [] = every event
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX tokens_revoked ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,                 -- master | token:<jti> (<sub>)
    action  TEXT NOT NULL,                 -- e.g. event.create, token.revoke
    target  TEXT,
    ip      TEXT,
    summary TEXT NOT NULL                  -- JSON; never a secret
);
CREATE INDEX audit_at ON audit (at);

ALTER TABLE events ADD COLUMN previous_hmac_secret TEXT;
ALTER TABLE events ADD COLUMN previous_secret_until INTEGER;
