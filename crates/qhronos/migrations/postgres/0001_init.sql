-- The PostgreSQL store: the same schema as the embedded one (migrations/sqlite, all steps
-- folded into one). Instants are BIGINT milliseconds since the Unix epoch (UTC); JSON columns
-- hold TEXT, read and written by the same code as SQLite's. Ids are text UUIDs in the "C"
-- collation, so that they sort by creation (v7) like SQLite's byte order.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE events (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    name                  TEXT NOT NULL,
    description           TEXT,
    start_time            BIGINT NOT NULL,
    timezone              TEXT NOT NULL,
    schedule              TEXT,
    exdates               TEXT NOT NULL,
    rdates                TEXT NOT NULL,
    action                TEXT NOT NULL,
    tags                  TEXT NOT NULL,
    metadata              TEXT NOT NULL,
    hmac_secret           TEXT,
    previous_hmac_secret  TEXT,
    previous_secret_until BIGINT,
    retry                 TEXT NOT NULL,
    misfire               TEXT NOT NULL,
    status                TEXT NOT NULL,
    next_fire_at          BIGINT,
    idempotency_key       TEXT UNIQUE,
    request_hash          TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX events_expand ON events (next_fire_at) WHERE status = 'active' AND next_fire_at IS NOT NULL;

CREATE TABLE event_tags (
    tag      TEXT NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, event_id)
);
CREATE INDEX event_tags_event ON event_tags (event_id);

CREATE TABLE occurrences (
    id               TEXT COLLATE "C" PRIMARY KEY,
    event_id         TEXT COLLATE "C" NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    scheduled_at     BIGINT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    attempt_limit    BIGINT NOT NULL,
    next_attempt_at  BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    last_error       TEXT,
    cancelled_by     TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    completed_at     BIGINT,
    UNIQUE (event_id, scheduled_at)
);
CREATE INDEX occurrences_due ON occurrences (next_attempt_at) WHERE status = 'pending';
CREATE INDEX occurrences_leased ON occurrences (lease_expires_at) WHERE status = 'scheduled';
CREATE INDEX occurrences_by_time ON occurrences (scheduled_at, id);
CREATE INDEX occurrences_by_status ON occurrences (status, scheduled_at);
-- "Does this event still have work?" (an event finishes when nothing is left to deliver). Without
-- it the planner may AND the event's rows with every row of a status, and a burst of 100k
-- scheduled occurrences makes each check scan all of them.
CREATE INDEX occurrences_event_status ON occurrences (event_id, status);
CREATE INDEX occurrences_done ON occurrences (updated_at) WHERE status IN ('completed', 'missed', 'cancelled', 'failed');

CREATE TABLE attempts (
    occurrence_id TEXT COLLATE "C" NOT NULL REFERENCES occurrences (id) ON DELETE CASCADE,
    attempt       BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    status_code   BIGINT,
    error         TEXT,
    response      TEXT,
    PRIMARY KEY (occurrence_id, attempt)
);

CREATE TABLE tokens (
    jti        TEXT COLLATE "C" PRIMARY KEY,
    sub        TEXT NOT NULL,
    access     TEXT NOT NULL,
    scope      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX tokens_revoked ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    ip      TEXT,
    summary TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);

-- Upkeep that must run on one node at a time (expansion, retention): whoever holds the row's
-- lease does it; a holder that dies stops renewing and another node takes over once it expires.
CREATE TABLE upkeep_leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
